"""The GTASR method as pure functions and small modules (no file I/O).

- :mod:`gtasr.method.schedule`: power-law grids, the bridge x(eta), y0, Stage I's N schedule.
- :mod:`gtasr.method.precond`: the consistency model f(x, sigma, y) around a backbone.
- :mod:`gtasr.method.objectives`: L_CT, L_TA, L_DTM+Stab, L_Rect; Stage I and II objectives.
- :mod:`gtasr.method.sampling`: one-step and multi-step samplers.
"""
