"""Consistency sampling (METHOD §6): one network evaluation, or several along decreasing etas.

Sampling starts from the top of the bridge, ``x_T = y0 + eta_1 * eps``, which needs no x0
(inference). Given x0 it starts instead from the ground-truth bridge state ``x(eta_1)``: that is
how the drift and decoupling diagnostics probe a model. Every further step re-noises the clamped
estimate along the bridge, ``(1 - eta) x0_hat + eta (y0 + eps_k)``, and denoises it again.

The noise is a callable ``noise(step) -> eps`` so that the caller decides where it comes from: a
generator (training validation), one noise field over the whole canvas cut into tiles (the
upscaler), or noise drawn in advance and shared by several models (the diagnostics). The model is
used as given (callers put it in eval mode) and no gradient is recorded.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from gtasr.method.schedule import bridge, draw_noise

Denoiser = Callable[[Tensor, float, Tensor], Tensor]
"""f(x, sigma, y): a consistency model, or a runtime that evaluates one (ONNX)."""
NoiseSource = Callable[[int], Tensor]
"""noise(step) -> standard normal noise of the HR shape for sampling step 0, 1, ..."""


def multistep_etas(steps: int, sigma_max: float = 1.0) -> tuple[float, ...]:
    """Noise levels of ``steps``-step sampling: sigma_max * (1, (k-1)/k, ..., 1/k).

    These are the non-zero points of Stage II's grid for N = ``steps``, largest first.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    return tuple(sigma_max * (steps - i) / steps for i in range(steps))


def fixed_noise(eps: Tensor) -> NoiseSource:
    """The same ``eps`` at every step (one-step sampling from noise drawn in advance)."""
    return lambda step: eps


def generator_noise(like: Tensor, generator: torch.Generator) -> NoiseSource:
    """Fresh noise shaped like ``like`` from ``generator`` at every step."""
    return lambda step: draw_noise(like, generator)


@torch.no_grad()
def sample(
    model: Denoiser,
    y: Tensor,
    y0: Tensor,
    noise: NoiseSource,
    etas: Sequence[float] = (1.0,),
    x0: Tensor | None = None,
) -> Tensor:
    """SR estimate after one step per noise level in ``etas`` (positive, decreasing).

    Step 0 denoises ``y0 + etas[0] * noise(0)``, or ``bridge(x0, y0, noise(0), etas[0])`` when
    ``x0`` is given; step k re-noises the estimate to ``etas[k]`` with ``noise(k)``. Every
    estimate is clamped to [-1, 1].
    """
    levels = [float(eta) for eta in etas]
    if not levels or levels[-1] <= 0 or any(b >= a for a, b in itertools.pairwise(levels)):
        raise ValueError(f"etas must be positive and decreasing, got {list(etas)}")
    first = levels[0]
    eps = noise(0)
    state = y0 + first * eps if x0 is None else bridge(x0, y0, eps, first)
    estimate = model(state, first, y).clamp(-1, 1)
    for step, eta in enumerate(levels[1:], start=1):
        estimate = model(bridge(estimate, y0, noise(step), eta), eta, y).clamp(-1, 1)
    return estimate
