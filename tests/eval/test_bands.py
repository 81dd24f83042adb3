"""gtasr.eval.bands: the band split that locates where a model loses PSNR."""

from __future__ import annotations

import numpy as np
import pytest

from gtasr.eval.bands import band_psnrs


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.2, 0.8, (32, 32, 3))


def test_a_tone_change_lowers_only_the_low_band() -> None:
    gt = _image(0)
    low, high = band_psnrs(gt + 0.01, gt)
    assert low == pytest.approx(40.0, abs=1e-6)  # luma moves by 0.01 everywhere
    assert high > 100  # the block means absorb a uniform shift completely


def test_texture_inside_each_block_lowers_only_the_high_band() -> None:
    gt = _image(1)
    checker = np.indices((32, 32)).sum(axis=0) % 2 * 0.02 - 0.01  # zero mean in every 4x4 block
    low, high = band_psnrs(gt + checker[..., None], gt)
    assert low > 100
    assert high == pytest.approx(40.0, abs=1e-6)
