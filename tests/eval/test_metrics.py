"""PSNR-Y and SSIM-Y against values derived by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gtasr.eval.metrics import psnr_y, rgb_to_y, ssim_y

Y_GAIN = (65.481 + 128.553 + 24.966) / 255.0  # dY per unit of a grey (R = G = B) change


def _random_rgb(seed: int, height: int = 32, width: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(20, 236, size=(height, width, 3)).astype(np.uint8)


def _grey(values: np.ndarray) -> np.ndarray:
    """RGB image whose three channels equal ``values``."""
    return np.repeat(np.asarray(values, dtype=np.float64)[..., None], 3, axis=2)


def test_y_channel_of_primaries_and_extremes():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]])
    np.testing.assert_allclose(
        rgb_to_y(rgb)[0], [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966]
    )


def test_identical_images_give_inf_psnr_and_unit_ssim():
    image = _random_rgb(0)
    assert psnr_y(image, image.copy()) == math.inf
    assert ssim_y(image, image.copy()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("offset", [1, 3, 10])
def test_constant_grey_offset_gives_analytic_psnr(offset):
    image = _random_rgb(1)
    shifted = image.astype(np.int64) + offset  # stays within [0, 255]
    expected = 20 * math.log10(255.0 / (offset * Y_GAIN))
    assert psnr_y(image, shifted) == pytest.approx(expected, abs=1e-9)


def test_known_noise_level_gives_analytic_psnr():
    rng = np.random.default_rng(2)
    image = _random_rgb(3).astype(np.float64)
    noise = rng.normal(0.0, 5.0, size=image.shape[:2])
    expected = 10 * math.log10(255.0**2 / (np.mean(noise**2) * Y_GAIN**2))
    assert psnr_y(image, image + noise[..., None]) == pytest.approx(expected, abs=1e-9)
    # about 20 log10(255 / (5 * 219 / 255)) = 35.46 dB for sigma = 5
    assert psnr_y(image, image + noise[..., None]) == pytest.approx(35.46, abs=0.1)


def test_crop_border_ignores_the_border():
    image = _random_rgb(4)
    damaged = image.copy()
    damaged[:2] = 0
    damaged[:, -2:] = 255
    assert psnr_y(image, damaged, crop_border=2) == math.inf
    assert psnr_y(image, damaged) < 20
    assert ssim_y(image, damaged, crop_border=2) == pytest.approx(1.0, abs=1e-12)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_y(_random_rgb(0, 32, 40), _random_rgb(0, 32, 41))


def _gaussian_weights() -> np.ndarray:
    offsets = np.arange(11) - 5.0
    taps = np.exp(-(offsets**2) / (2 * 1.5**2))
    window = np.outer(taps, taps)
    return window / window.sum()


def _ssim_at(ya: np.ndarray, yb: np.ndarray, weights: np.ndarray) -> float:
    """SSIM of one 11x11 window written out term by term (Wang et al. 2004, Eq. 13)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = np.sum(weights * ya), np.sum(weights * yb)
    var_a = np.sum(weights * (ya - mu_a) ** 2)
    var_b = np.sum(weights * (yb - mu_b) ** 2)
    cov = np.sum(weights * (ya - mu_a) * (yb - mu_b))
    luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    structure = (2 * cov + c2) / (var_a + var_b + c2)
    return float(luminance * structure)


def test_ssim_of_two_constant_windows_is_the_luminance_term():
    a, b = 100.0, 120.0
    ya, yb = 16 + a * Y_GAIN, 16 + b * Y_GAIN
    c1 = (0.01 * 255) ** 2
    expected = (2 * ya * yb + c1) / (ya**2 + yb**2 + c1)
    assert ssim_y(_grey(np.full((11, 11), a)), _grey(np.full((11, 11), b))) == pytest.approx(
        expected, abs=1e-12
    )


def test_ssim_matches_windows_computed_one_by_one():
    rng = np.random.default_rng(5)
    a = rng.uniform(0, 255, size=(13, 12))
    b = np.clip(a + rng.normal(0, 30, size=a.shape), 0, 255)
    weights = _gaussian_weights()
    ya, yb = 16 + a * Y_GAIN, 16 + b * Y_GAIN
    per_window = [
        _ssim_at(ya[i : i + 11, j : j + 11], yb[i : i + 11, j : j + 11], weights)
        for i in range(3)
        for j in range(2)
    ]
    assert ssim_y(_grey(a), _grey(b)) == pytest.approx(np.mean(per_window), abs=1e-12)
    assert 0.5 < ssim_y(_grey(a), _grey(b)) < 0.99
