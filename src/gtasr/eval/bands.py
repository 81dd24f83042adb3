"""Where a model's picture differs from the truth: frequency bands and pixel detail.

The measures of the training diagnosis (docs/training-diagnosis.md, with
``scripts/stage1_diagnosis.py`` and ``scripts/crop_detail.py``): PSNR of the luma's LR-scale
band and of the detail above it, and the mean step between neighbouring pixels of a crop.
"""

from __future__ import annotations

import numpy as np
import torch


def luminance(image: np.ndarray) -> np.ndarray:
    """HxWx3 in [0, 1] -> HxW BT.601 luma."""
    return image @ np.array([0.299, 0.587, 0.114])


def band_psnrs(sr: np.ndarray, gt: np.ndarray, factor: int = 4) -> tuple[float, float]:
    """PSNR (dB, peak 1) of the luma's low band and of the rest, SR against GT.

    The low band is the mean of each ``factor`` x ``factor`` block (what the LR image holds),
    the high band the luma minus that mean repeated over its block: a tone or colour change
    at LR scale, which LPIPS barely sees, lowers the first; missing or wrong texture the second.
    """

    def bands(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        luma = luminance(image)
        h, w = luma.shape[0] // factor * factor, luma.shape[1] // factor * factor
        low = luma[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
        return low, luma[:h, :w] - np.kron(low, np.ones((factor, factor)))

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        return float(-10 * np.log10(max(np.mean((a - b) ** 2), 1e-12)))

    (sr_low, sr_high), (gt_low, gt_high) = bands(sr), bands(gt)
    return psnr(sr_low, gt_low), psnr(sr_high, gt_high)


def detail(crop: torch.Tensor) -> float:
    """Mean |x[i, j+1] - x[i, j]| in grey levels of a [-1, 1] Tensor[3, H, W]."""
    levels = (crop.double() + 1) * 127.5
    return float((levels[:, :, 1:] - levels[:, :, :-1]).abs().mean())
