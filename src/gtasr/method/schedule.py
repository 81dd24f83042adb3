"""The forward process: a straight bridge from the HR image x0 to y0 + eps (METHOD §1).

    x(eta) = (1 - eta) * x0 + eta * (y0 + eps),    eta in [0, 1]

The release writes the state ResShift-style as ``x0 + alpha * (y0 - x0) + sigma * eps`` with
one grid for the shift ``alpha`` and one for the noise ``sigma``. Both are power-law grids,
``t_i = (i / N) ** power``; the noise grid is scaled by ``sigma_max``, so with its default of 1
the two coincide (``alpha = sigma = eta``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

STAGE1_POWER = 2.5
"""Grid exponent of Stage I: eta = {0, .0313, .1768, .4871, 1} for N = 4."""
STAGE1_INITIAL_INTERVALS = 4
STAGE1_FINAL_INTERVALS = 3


def power_grid(num_intervals: int, power: float = STAGE1_POWER, sigma_max: float = 1.0) -> Tensor:
    """Return the N + 1 grid points ``sigma_max * (i / N) ** power``, i = 0..N.

    The result is a float64 CPU tensor, increasing from 0 to ``sigma_max``.
    """
    if num_intervals < 1:
        raise ValueError(f"num_intervals must be >= 1, got {num_intervals}")
    if power <= 0 or sigma_max <= 0:
        raise ValueError(f"power and sigma_max must be positive, got {power}, {sigma_max}")
    t = (torch.arange(num_intervals + 1, dtype=torch.float64) / num_intervals) ** power
    return t * sigma_max


@dataclass(frozen=True)
class BridgeGrid:
    """Discretisation of the bridge: grid point i has shift ``shift[i]`` and noise ``noise[i]``.

    The consistency function is evaluated at ``sigma = noise[i]`` (as in the release); with the
    default knobs ``shift == noise == eta``.
    """

    shift: tuple[float, ...]
    noise: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.shift) != len(self.noise) or len(self.shift) < 2:
            raise ValueError("shift and noise grids need the same length, at least 2 points")

    @classmethod
    def power_law(
        cls, num_intervals: int, power: float = STAGE1_POWER, sigma_max: float = 1.0
    ) -> BridgeGrid:
        """The release's pair of grids: shift over [0, 1], noise over [0, sigma_max], both
        with the same ``power``."""
        noise = power_grid(num_intervals, power, sigma_max)
        shift = power_grid(num_intervals, power)
        return cls(shift=tuple(shift.tolist()), noise=tuple(noise.tolist()))

    @property
    def num_intervals(self) -> int:
        """N, the number of intervals (the grid has N + 1 points)."""
        return len(self.shift) - 1

    def state(self, x0: Tensor, y0: Tensor, eps: Tensor, index: int) -> Tensor:
        """The bridge state at grid point ``index``."""
        return bridge(x0, y0, eps, self.shift[index], self.noise[index])


def draw_noise(like: Tensor, generator: torch.Generator) -> Tensor:
    """Standard normal noise shaped like ``like``, drawn on the generator's device.

    Drawing on the generator's device keeps a seed's noise identical whatever device the
    images live on (a CPU generator gives the same eps for CPU and CUDA runs).
    """
    noise = torch.randn(like.shape, generator=generator, device=generator.device)
    return noise.to(device=like.device, dtype=like.dtype)


def _per_sample(value: float | Tensor, like: Tensor) -> float | Tensor:
    """A scalar stays a scalar; a Tensor[B] becomes Tensor[B, 1, 1, 1] to broadcast over NCHW."""
    if isinstance(value, Tensor) and value.ndim > 0:
        return value.to(device=like.device, dtype=like.dtype).reshape(-1, 1, 1, 1)
    return value


def bridge(
    x0: Tensor,
    y0: Tensor,
    eps: Tensor,
    eta: float | Tensor,
    sigma: float | Tensor | None = None,
) -> Tensor:
    """The bridge state ``(1 - eta) * x0 + eta * y0 + sigma * eps`` (``sigma`` defaults to eta).

    With ``sigma = eta`` this is ``(1 - eta) x0 + eta (y0 + eps)``: x0 at eta = 0 (bit for bit)
    and ``y0 + eps`` at eta = 1. ``eta``/``sigma`` are floats or per-sample Tensor[B].
    """
    eta_b = _per_sample(eta, x0)
    sigma_b = eta_b if sigma is None else _per_sample(sigma, x0)
    return (1 - eta_b) * x0 + eta_b * y0 + sigma_b * eps


def upsample_lr(y: Tensor, scale: int = 4, clamp: bool = True) -> Tensor:
    """Bicubic x``scale`` upsampling of the LR image, clamped to [-1, 1] (y0 at inference).

    Training data rounds y0 to 8 bits, which also bounds it; the clamp keeps inference y0 in the
    same range (bicubic overshoots at edges). The 1/255 quantisation itself is not reproduced.
    ``clamp=False`` keeps the overshoot, as the authors' test pipeline does.
    """
    up = F.interpolate(y, scale_factor=scale, mode="bicubic", align_corners=False)
    return up.clamp(-1, 1) if clamp else up


@dataclass(frozen=True)
class GridSchedule:
    """The grid of every training step: N from ``num_intervals`` on the power-law grid.

    One value is a fixed N (Stage II: N = 3); two, ``(initial, final)``, step N from the first
    to the last in equal phases of ``iterations`` (Stage I: N = 4, then 3 from half-way), as
    :func:`stage1_num_intervals` says.
    """

    num_intervals: tuple[int, ...]
    iterations: int
    power: float = 2.5
    sigma_max: float = 1.0

    def grid(self, step: int) -> BridgeGrid:
        """The grid of training step ``step``."""
        n = stage1_num_intervals(
            step, self.iterations, initial=self.num_intervals[0], final=self.num_intervals[-1]
        )
        return BridgeGrid.power_law(n, power=self.power, sigma_max=self.sigma_max)


def stage1_num_intervals(
    iteration: int,
    total_iterations: int,
    initial: int = STAGE1_INITIAL_INTERVALS,
    final: int = STAGE1_FINAL_INTERVALS,
) -> int:
    """Stage I's N at ``iteration``: steps from ``initial`` to ``final`` in equal phases.

    As in the release, the run is split into ``initial - final + 1`` equal phases (for 4 -> 3:
    N = 4 for the first half of training, then 3).
    """
    if total_iterations < 1 or iteration < 0:
        raise ValueError(f"bad iteration {iteration} of {total_iterations}")
    if initial == final:
        return initial
    step = 1 if final > initial else -1
    phases = abs(initial - final) + 1
    phase_length = max(1, math.floor(total_iterations / phases))
    value = initial + step * (iteration // phase_length)
    return min(value, final) if step > 0 else max(value, final)
