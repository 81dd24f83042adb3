"""Samplers: one network evaluation (inference, METHOD §6) and multi-step consistency sampling.

Both start from the top of the bridge, ``x_T = y0 + sigma_max * eps``, which needs no x0. The
model is used as given (callers put it in eval mode) and no gradient is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gtasr.method.schedule import bridge, draw_noise, upsample_lr


def _lr_upsampled(y: Tensor, eps: Tensor, y0: Tensor | None) -> Tensor:
    """y0 as given, or the bicubic upsampling of y to eps's (HR) size."""
    if y0 is not None:
        return y0
    scale = eps.shape[-1] // y.shape[-1]
    if scale * y.shape[-1] != eps.shape[-1] or scale * y.shape[-2] != eps.shape[-2]:
        raise ValueError(f"eps shape {tuple(eps.shape)} is not an integer multiple of y's")
    return upsample_lr(y, scale)


@torch.no_grad()
def sample_one_step(
    model: nn.Module,
    y: Tensor,
    eps: Tensor,
    sigma_max: float = 1.0,
    y0: Tensor | None = None,
) -> Tensor:
    """SR = clamp(f(y0 + sigma_max * eps, sigma_max, y), -1, 1); eps has the HR shape."""
    y0 = _lr_upsampled(y, eps, y0)
    x_top = y0 + sigma_max * eps
    return model(x_top, sigma_max, y).clamp(-1, 1)


@torch.no_grad()
def sample_multistep(
    model: nn.Module,
    y: Tensor,
    etas: Sequence[float],
    generator: torch.Generator,
    eps: Tensor | None = None,
    y0: Tensor | None = None,
) -> Tensor:
    """Consistency multistep sampling over the non-zero ``etas``, from the largest down.

    Step 1 denoises ``y0 + eta_1 * eps``; every further step re-noises the clamped estimate
    along the bridge, ``(1 - eta) x0_hat + eta (y0 + eps_k)`` with fresh ``eps_k`` from
    ``generator``, and denoises again. ``eps`` (default: drawn from ``generator``, HR shape)
    is the starting noise; with ``etas = [sigma_max]`` this equals :func:`sample_one_step`.
    """
    levels = sorted((float(e) for e in etas if float(e) > 0), reverse=True)
    if not levels:
        raise ValueError(f"etas needs at least one positive value, got {list(etas)}")
    if eps is None:
        batch, channels, height, width = y.shape
        scale = y0.shape[-1] // width if y0 is not None else 4
        eps = draw_noise(y.new_empty(batch, channels, height * scale, width * scale), generator)
    y0 = _lr_upsampled(y, eps, y0)
    estimate = sample_one_step(model, y, eps, levels[0], y0)
    for eta in levels[1:]:
        state = bridge(estimate, y0, draw_noise(estimate, generator), eta)
        estimate = model(state, eta, y).clamp(-1, 1)
    return estimate
