"""Blur kernels of the Real-ESRGAN degradation model.

Every kernel is a float64 ``numpy`` array of odd size ``k x k`` that sums to 1.
With ``d(x) = x^T Sigma^-1 x`` for a pixel offset ``x`` from the centre and a
covariance ``Sigma = R(theta) diag(sx^2, sy^2) R(theta)^T``:

* Gaussian:              ``exp(-d / 2)``
* generalized Gaussian:  ``exp(-d^beta / 2)``   (beta = 1 is the Gaussian)
* plateau:               ``1 / (1 + d^beta)``
* sinc (circular low-pass with cutoff ``omega`` in rad/pixel):
  ``omega * J1(omega r) / (2 pi r)``, centre value ``omega^2 / (4 pi)``.

Isotropic kernels use ``sx = sy`` and no rotation. The random draws follow the
authors' release (BasicSR as used by ResShift/CTMSR/GTASR); every draw comes
from the explicit ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)


def _check_size(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 != 1:
        raise ValueError(f"kernel size must be a positive odd number, got {kernel_size}")


def _offsets(kernel_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets (x across columns, y down rows) from the kernel centre."""
    axis = np.arange(kernel_size, dtype=np.float64) - kernel_size // 2
    xx, yy = np.meshgrid(axis, axis)
    return xx, yy


def _mahalanobis(
    kernel_size: int, sigma_x: float, sigma_y: float | None, theta: float
) -> np.ndarray:
    """``x^T Sigma^-1 x`` on the kernel grid for the rotated covariance (isotropic: no sigma_y)."""
    _check_size(kernel_size)
    sigma_y = sigma_x if sigma_y is None else sigma_y
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"kernel sigmas must be positive, got {sigma_x}, {sigma_y}")
    xx, yy = _offsets(kernel_size)
    cos, sin = math.cos(theta), math.sin(theta)
    # Coordinates in the rotated frame where the covariance is diagonal.
    u = cos * xx + sin * yy
    v = -sin * xx + cos * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return kernel / kernel.sum()


def gaussian_kernel(
    kernel_size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0
) -> np.ndarray:
    """(An)isotropic Gaussian; ``sigma_y=None`` gives the isotropic kernel."""
    return _normalised(np.exp(-0.5 * _mahalanobis(kernel_size, sigma_x, sigma_y, theta)))


def generalized_gaussian_kernel(
    kernel_size: int, sigma_x: float, beta: float, sigma_y: float | None = None, theta: float = 0.0
) -> np.ndarray:
    """Generalized Gaussian ``exp(-d^beta / 2)``: flatter top for beta > 1, peakier below."""
    d = _mahalanobis(kernel_size, sigma_x, sigma_y, theta)
    return _normalised(np.exp(-0.5 * np.power(d, beta)))


def plateau_kernel(
    kernel_size: int, sigma_x: float, beta: float, sigma_y: float | None = None, theta: float = 0.0
) -> np.ndarray:
    """Plateau-shaped kernel ``1 / (1 + d^beta)`` with heavy tails."""
    d = _mahalanobis(kernel_size, sigma_x, sigma_y, theta)
    return _normalised(1.0 / (1.0 + np.power(d, beta)))


def sinc_kernel(kernel_size: int, cutoff: float) -> np.ndarray:
    """Circularly symmetric ideal low-pass filter with cutoff ``cutoff`` rad/pixel.

    It imitates the ringing and overshoot of real sharpening and resampling.
    The ideal filter is truncated to ``kernel_size`` and renormalised.
    """
    _check_size(kernel_size)
    if not 0 < cutoff <= math.pi:
        raise ValueError(f"sinc cutoff must be in (0, pi], got {cutoff}")
    xx, yy = _offsets(kernel_size)
    r = np.hypot(xx, yy)
    centre = kernel_size // 2
    r[centre, centre] = 1.0  # placeholder, replaced by the limit below
    bessel = torch.special.bessel_j1(torch.from_numpy(cutoff * r)).numpy()
    kernel = cutoff * bessel / (2 * math.pi * r)
    kernel[centre, centre] = cutoff**2 / (4 * math.pi)
    return _normalised(kernel)


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a centred kernel to ``size x size`` (a no-op when already that big)."""
    pad = (size - kernel.shape[0]) // 2
    if pad < 0:
        raise ValueError(f"cannot pad a {kernel.shape[0]}x{kernel.shape[0]} kernel to {size}")
    return np.pad(kernel, pad)


def identity_kernel(size: int = 1) -> np.ndarray:
    """The kernel that leaves an image unchanged (a centred unit pulse)."""
    return pad_kernel(np.ones((1, 1)), size)


@dataclass(frozen=True)
class BlurSettings:
    """Ranges of one blur stage (Real-ESRGAN option names in brackets).

    ``kernel_sizes`` are the odd sizes drawn uniformly; the release draws
    ``range(3, blur_kernel_size, 2)`` (3..19 for the 21 px first stage).
    """

    kernel_sizes: tuple[int, ...]
    kernel_probs: tuple[float, ...]  # over KERNEL_TYPES [kernel_prob]
    sigma_range: tuple[float, float]  # [blur_sigma]
    betag_range: tuple[float, float] = (0.5, 4.0)  # generalized Gaussian beta [betag_range]
    betap_range: tuple[float, float] = (1.0, 2.0)  # plateau beta [betap_range]
    sinc_prob: float = 0.1  # a sinc kernel replaces the mixture [sinc_prob]

    def __post_init__(self) -> None:
        for size in self.kernel_sizes:
            _check_size(size)
        if len(self.kernel_probs) != len(KERNEL_TYPES):
            raise ValueError(f"kernel_probs needs {len(KERNEL_TYPES)} entries")
        if not math.isclose(sum(self.kernel_probs), 1.0, abs_tol=1e-6):
            raise ValueError(f"kernel_probs must sum to 1, got {sum(self.kernel_probs)}")


def sinc_cutoff_range(kernel_size: int) -> tuple[float, float]:
    """Cutoff range of the release's random sinc blur: wider for big kernels.

    Kernels under 13 px draw omega in [pi/3, pi]; larger ones in [pi/5, pi]
    (a low cutoff needs a long support to be represented).
    """
    return (math.pi / 3, math.pi) if kernel_size < 13 else (math.pi / 5, math.pi)


def _draw_beta(rng: np.random.Generator, beta_range: Sequence[float]) -> float:
    """Shape parameter: below or above 1 with equal probability (as the release)."""
    low, high = beta_range
    if rng.uniform() < 0.5:
        return float(rng.uniform(low, 1.0)) if low < 1.0 else 1.0
    return float(rng.uniform(1.0, high)) if high > 1.0 else 1.0


def random_mixed_kernel(
    rng: np.random.Generator, kernel_size: int, settings: BlurSettings
) -> np.ndarray:
    """Draw one kernel type by ``settings.kernel_probs`` and its parameters."""
    kind = KERNEL_TYPES[int(rng.choice(len(KERNEL_TYPES), p=np.asarray(settings.kernel_probs)))]
    low, high = settings.sigma_range
    sigma_x = float(rng.uniform(low, high))
    sigma_y, theta = None, 0.0
    if kind.endswith("aniso"):
        sigma_y = float(rng.uniform(low, high))
        theta = float(rng.uniform(-math.pi, math.pi))
    if kind in ("iso", "aniso"):
        return gaussian_kernel(kernel_size, sigma_x, sigma_y, theta)
    if kind.startswith("generalized"):
        beta = _draw_beta(rng, settings.betag_range)
        return generalized_gaussian_kernel(kernel_size, sigma_x, beta, sigma_y, theta)
    beta = _draw_beta(rng, settings.betap_range)
    return plateau_kernel(kernel_size, sigma_x, beta, sigma_y, theta)


def random_blur_kernel(rng: np.random.Generator, settings: BlurSettings) -> np.ndarray:
    """One blur kernel of a degradation stage: a random size, then sinc or mixture."""
    kernel_size = int(rng.choice(settings.kernel_sizes))
    if rng.uniform() < settings.sinc_prob:
        return sinc_kernel(kernel_size, float(rng.uniform(*sinc_cutoff_range(kernel_size))))
    return random_mixed_kernel(rng, kernel_size, settings)


def random_final_sinc(
    rng: np.random.Generator, kernel_sizes: Sequence[int], probability: float
) -> np.ndarray:
    """The final sinc filter of the pipeline, or the identity when not drawn.

    Cutoff in [pi/3, pi] whatever the size, as in the release.
    """
    if rng.uniform() < probability:
        kernel_size = int(rng.choice(kernel_sizes))
        return sinc_kernel(kernel_size, float(rng.uniform(math.pi / 3, math.pi)))
    return identity_kernel()
