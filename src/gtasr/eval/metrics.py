"""Full-reference metrics of the super-resolution field: PSNR and SSIM on luma.

Both follow BasicSR's conventions, which the published tables use: images are
RGB arrays on [0, 255] (HxWx3), reduced to the Y channel of ITU-R BT.601
YCbCr in float64 (``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``, no
rounding), optionally with ``crop_border`` pixels removed from each edge.
SSIM uses an 11x11 Gaussian window (sigma 1.5), the constants
``C1 = (0.01 * 255)**2`` and ``C2 = (0.03 * 255)**2``, and averages the SSIM
map over the "valid" positions (where the whole window fits), as Wang et al.'s
MATLAB reference does.
"""

from __future__ import annotations

import math

import numpy as np

Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
Y_OFFSET = 16.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * 255.0) ** 2
SSIM_C2 = (0.03 * 255.0) ** 2


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Y channel (BT.601, [16, 235]) of an HxWx3 RGB array on [0, 255], as float64."""
    array = np.asarray(rgb, dtype=np.float64)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {array.shape}")
    return array @ Y_WEIGHTS + Y_OFFSET


def _prepare(a: np.ndarray, b: np.ndarray, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes, convert both images to Y and crop the border."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"image shapes differ: {np.shape(a)} vs {np.shape(b)}")
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    if crop_border:
        ya = ya[crop_border:-crop_border, crop_border:-crop_border]
        yb = yb[crop_border:-crop_border, crop_border:-crop_border]
    if ya.size == 0:
        raise ValueError(f"crop_border {crop_border} leaves no pixels of a {np.shape(a)} image")
    return ya, yb


def psnr_y(a: np.ndarray, b: np.ndarray, crop_border: int = 0) -> float:
    """PSNR in dB between the Y channels of two RGB images on [0, 255]; inf if identical."""
    ya, yb = _prepare(a, b, crop_border)
    mse = float(np.mean((ya - yb) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)


def gaussian_kernel_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps; the SSIM window is their outer product."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return taps / taps.sum()


def _filter_valid(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable correlation of a 2-D array with ``outer(taps, taps)``, valid positions only."""
    size = taps.size
    rows = image.shape[0] - size + 1
    cols = image.shape[1] - size + 1
    vertical = sum(taps[k] * image[k : k + rows, :] for k in range(size))
    return sum(taps[k] * vertical[:, k : k + cols] for k in range(size))


def ssim_map(ya: np.ndarray, yb: np.ndarray) -> np.ndarray:
    """SSIM at every valid window position of two single-channel float64 images."""
    if min(ya.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels")
    taps = gaussian_kernel_1d()
    mu_a = _filter_valid(ya, taps)
    mu_b = _filter_valid(yb, taps)
    var_a = _filter_valid(ya * ya, taps) - mu_a**2
    var_b = _filter_valid(yb * yb, taps) - mu_b**2
    cov = _filter_valid(ya * yb, taps) - mu_a * mu_b
    numerator = (2.0 * mu_a * mu_b + SSIM_C1) * (2.0 * cov + SSIM_C2)
    denominator = (mu_a**2 + mu_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2)
    return numerator / denominator


def ssim_y(a: np.ndarray, b: np.ndarray, crop_border: int = 0) -> float:
    """Mean SSIM between the Y channels of two RGB images on [0, 255]."""
    ya, yb = _prepare(a, b, crop_border)
    return float(ssim_map(ya, yb).mean())
