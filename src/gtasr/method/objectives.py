"""The loss terms of GTASR (METHOD §4, §5); :mod:`gtasr.method.loss` sums them per stage.

Stage I:   L_I  = L_CT + 0.5 L_TA
Stage II:  L_II = L_CT + L_DTM+Stab + L_Rect

Distances are injected as callables ``d(a, b) -> Tensor[B]`` (one value per sample; a
per-pixel map is averaged per sample), so the terms stay independent of the perceptual
networks. Every random draw (the grid index n, the bridge noise, TA's and DTM's fresh noise)
comes from the explicit ``generator``.

The target network theta_minus. The release keeps a second network whose parameters are
copied from theta at the start of every step, before the update, and runs it in eval mode
under no_grad. That is the online network itself, evaluated in eval mode (dropout off, no
random LR-condition drop) without gradient, which is what :func:`consistency_pair` does; the
online network's train/eval mode is restored afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from gtasr.method.schedule import BridgeGrid, bridge, draw_noise

Distance = Callable[[Tensor, Tensor], Tensor]
"""d(a, b) -> Tensor[B]: a per-sample distance, differentiable in its inputs."""
EdgeMap = Callable[[Tensor], Tensor]
"""S(u): per-channel edge magnitude of an image batch, same shape as its input."""


def draw_index(high: int, generator: torch.Generator) -> int:
    """A uniform integer in {0, ..., high - 1}."""
    return int(torch.randint(0, high, (1,), generator=generator, device=generator.device).item())


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block, then restore each submodule's own mode."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with ``requires_grad=False``: Stage II's reference psi."""
    reference = copy.deepcopy(model)
    reference.eval()
    reference.requires_grad_(False)
    return reference


def per_sample(distance: Distance, a: Tensor, b: Tensor) -> Tensor:
    """``distance(a, b)`` as Tensor[B], averaging any further dimensions per sample."""
    return distance(a, b).reshape(a.shape[0], -1).mean(dim=1)


def per_sample_terms(distance: Distance, a: Tensor, b: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """``(d(a, b), {name: part})`` per sample, each Tensor[B].

    A distance with a ``terms(a, b)`` method (a dict of per-sample parts that sum to d, such as
    LPIPS and Charbonnier) has its parts reported, so training can log each one; any other
    distance reports no parts.
    """
    terms = getattr(distance, "terms", None)
    if terms is None:
        return per_sample(distance, a, b), {}
    parts = {k: v.reshape(a.shape[0], -1).mean(dim=1) for k, v in terms(a, b).items()}
    return torch.stack(list(parts.values())).sum(dim=0), parts


def consistency_pair(
    model: nn.Module,
    x0: Tensor,
    y: Tensor,
    y0: Tensor,
    grid: BridgeGrid,
    n: int,
    eps: Tensor,
) -> tuple[Tensor, Tensor]:
    """Return ``(x_hat, target)`` of L_CT at grid index ``n`` with the shared noise ``eps``.

    ``x_hat = f_theta(x_{n+1}, eta_{n+1}, y)`` carries gradient; ``target =
    sg f_theta_minus(x_n, eta_n, y)`` is the same network in eval mode without gradient (see
    the module docstring). At n = 0 the boundary condition makes the target x0.
    """
    if not 0 <= n < grid.num_intervals:
        raise ValueError(f"grid index n={n} outside 0..{grid.num_intervals - 1}")
    x_next = grid.state(x0, y0, eps, n + 1)
    x_hat = model(x_next, grid.noise[n + 1], y)
    x_n = grid.state(x0, y0, eps, n)
    with torch.no_grad(), eval_mode(model):
        target = model(x_n, grid.noise[n], y)
    return x_hat, target.detach()


TA_POINTS = ("all", "one")
"""How L_TA visits the interior grid points (see :class:`~gtasr.method.loss.Stage1Loss`)."""


def _interior_states(
    x0: Tensor, x_hat: Tensor, y0: Tensor, grid: BridgeGrid, generator: torch.Generator, points: str
) -> tuple[Tensor, Tensor]:
    """The x0-path and x_hat-path states L_TA compares.

    ``"all"``: every interior point k with its own fresh noise eps_k, stacked point by point
    ((N - 1) * B states). ``"one"``: one uniformly drawn point per sample with one fresh noise
    (B states).
    """
    interior = range(1, grid.num_intervals)
    if points == "all":
        noises = [draw_noise(x0, generator) for _ in interior]
        pairs = list(zip(interior, noises, strict=True))
        real = torch.cat([grid.state(x0, y0, e, k) for k, e in pairs])
        fake = torch.cat([grid.state(x_hat, y0, e, k) for k, e in pairs])
        return real, fake
    if points != "one":
        raise ValueError(f"ta_points must be one of {', '.join(TA_POINTS)}, got {points!r}")
    batch = x0.shape[0]
    k = torch.randint(1, grid.num_intervals, (batch,), generator=generator, device=generator.device)
    eps = draw_noise(x0, generator)
    shift = torch.tensor(grid.shift, dtype=torch.float64)[k.cpu()]
    noise = torch.tensor(grid.noise, dtype=torch.float64)[k.cpu()]
    real = bridge(x0, y0, eps, shift, noise)
    fake = bridge(x_hat, y0, eps, shift, noise)
    return real, fake


def trajectory_alignment_loss(
    x0: Tensor,
    x_hat: Tensor,
    y0: Tensor,
    grid: BridgeGrid,
    distance: Distance,
    generator: torch.Generator,
    parts: dict[str, Tensor] | None = None,
    points: str = "all",
) -> Tensor:
    """L_TA = sum_{k=1}^{N-1} mean_b d(x0-path(eta_k, eps_k), x_hat-path(eta_k, eps_k)).

    With ``points="all"`` each interior grid point gets its own fresh noise eps_k (shared by
    both paths) and all N - 1 points go through ``distance`` as one batch of (N - 1) * B
    samples; ``points="one"`` estimates the same sum from one drawn point per sample. When
    ``parts`` is a dict, the distance's named parts of L_TA (see :func:`per_sample_terms`) are
    stored in it.
    """
    if grid.num_intervals < 2:
        return x_hat.new_zeros(())
    real, fake = _interior_states(x0, x_hat, y0, grid, generator, points)
    values, terms = per_sample_terms(distance, real, fake)
    # The mean over the states times N - 1 is the sum over points of each point's batch mean
    # ("all"), or its unbiased estimate from one drawn point per sample ("one").
    scale = grid.num_intervals - 1
    if parts is not None:
        parts.update({k: v * scale for k, v in terms.items()})
    return values.mean() * scale


def _check_frozen(reference: nn.Module) -> None:
    if any(p.requires_grad for p in reference.parameters()):
        raise ValueError("the reference network psi must be frozen (use frozen_copy)")


def reference_endpoints(
    reference: nn.Module,
    x0: Tensor,
    x_hat: Tensor,
    y: Tensor,
    y0: Tensor,
    grid: BridgeGrid,
    index: int,
    eps: Tensor,
    with_gradient: bool,
) -> tuple[Tensor, Tensor]:
    """Return ``(real, fake) = (psi(x_t), psi(z_t))`` at grid point ``index`` with noise ``eps``.

    ``x_t`` is on the ground-truth path, ``z_t`` on the prediction's path. ``real`` never
    carries gradient. With ``with_gradient`` the gradient flows from ``fake`` through the
    frozen psi into ``x_hat``; otherwise ``fake`` is computed without gradient from a detached
    x_hat (the release).
    """
    _check_frozen(reference)
    x_t = grid.state(x0, y0, eps, index)
    z_t = grid.state(x_hat if with_gradient else x_hat.detach(), y0, eps, index)
    sigma = grid.noise[index]
    with eval_mode(reference):
        with torch.no_grad():
            real = reference(x_t, sigma, y)
        with torch.set_grad_enabled(with_gradient and torch.is_grad_enabled()):
            fake = reference(z_t, sigma, y)
    return real, fake


def dtm_stab_loss(
    x_hat: Tensor,
    x0: Tensor,
    real: Tensor,
    fake: Tensor,
    edge_map: EdgeMap,
    distance: Distance,
    stab_weight: float,
) -> Tensor:
    """mean_b w_b d(x_hat, sg(x_hat - (fake - real) - stab_weight (S(fake) - S(real)))).

    ``w_b = 1 / mean|x_hat - x0|`` per sample, detached (denominator floored at 1e-12).
    """
    with torch.no_grad():
        direction = (fake - real) + stab_weight * (edge_map(fake) - edge_map(real))
        pseudo_target = x_hat - direction
        w = 1.0 / (x_hat - x0).abs().mean(dim=(1, 2, 3)).clamp_min(1e-12)
    return (w * per_sample(distance, x_hat, pseudo_target)).mean()


def rectification_loss(fake: Tensor, x0: Tensor, edge_map: EdgeMap, distance: Distance) -> Tensor:
    """L_Rect = mean_b d(S(fake), S(x0)): the fake endpoint's structure against the ground truth."""
    return per_sample(distance, edge_map(fake), edge_map(x0)).mean()
