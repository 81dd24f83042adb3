"""scripts/stage1_diagnosis.py: the band split that locates where a model loses PSNR."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest


@pytest.fixture(scope="module")
def diagnosis(load_script) -> ModuleType:
    return load_script("stage1_diagnosis")


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.2, 0.8, (32, 32, 3))


def test_a_tone_change_lowers_only_the_low_band(diagnosis) -> None:
    gt = _image(0)
    low, high = diagnosis.band_psnrs(gt + 0.01, gt)
    assert low == pytest.approx(40.0, abs=1e-6)  # luma moves by 0.01 everywhere
    assert high > 100  # the block means absorb a uniform shift completely


def test_texture_inside_each_block_lowers_only_the_high_band(diagnosis) -> None:
    gt = _image(1)
    checker = np.indices((32, 32)).sum(axis=0) % 2 * 0.02 - 0.01  # zero mean in every 4x4 block
    low, high = diagnosis.band_psnrs(gt + checker[..., None], gt)
    assert low > 100
    assert high == pytest.approx(40.0, abs=1e-6)
