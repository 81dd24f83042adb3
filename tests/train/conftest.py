"""Fixtures of the trainer tests: synthetic photos, a validation folder, small configs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gtasr.train.config import Config, config_from_dict

SMALL = {
    "stage": 1,
    "model": {"preset": "tiny"},
    "data": {"crop_size": 32, "degradation": "bicubic", "workers": 0},
    "loss": {"lpips_weight": 0.0, "charbonnier_weight": 1.0},
    "train": {
        "batch_size": 2,
        "iterations": 6,
        "lr": 1e-3,
        "checkpoint_every": 3,
        "keep_checkpoints": 2,
        "device": "cpu",
        "precision": "fp32",
        "ema_decay": 0.9,
    },
    "val": {"every": 1000, "lpips": False, "max_images": 2},
    "log": {"every": 1, "progress": False, "tensorboard": False},
}


def synthetic_photo(seed: int, size: int = 64) -> np.ndarray:
    """A smooth colour image with a few sharp-edged rectangles (uint8 HxWx3)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack(
        [0.5 + 0.4 * np.sin(6 * xx + seed), 0.5 + 0.4 * np.cos(5 * yy), 0.3 + 0.5 * xx * yy], -1
    )
    for _ in range(4):
        top, left = rng.integers(0, size - 12, 2)
        image[top : top + 12, left : left + 12] = rng.uniform(0, 1, 3)
    return np.clip(image * 255, 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def _single_threaded(one_thread: None) -> None:
    """Every training test runs with one intra-op thread (tests/conftest.py)."""


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Two 64x64 training photos and a gt/lq validation folder of the same images."""
    root = tmp_path / "data"
    for sub in ("photos", "val/gt", "val/lq"):
        (root / sub).mkdir(parents=True)
    for index in range(2):
        pixels = synthetic_photo(index)
        Image.fromarray(pixels).save(root / "photos" / f"p{index}.png")
        gt = Image.fromarray(pixels[:32, :32])
        gt.save(root / "val" / "gt" / f"p{index}.png")
        gt.resize((8, 8), Image.BICUBIC).save(root / "val" / "lq" / f"p{index}.png")
    return root


def merge(base: dict, changes: dict) -> dict:
    """Nested dict update (returns a new dict)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


@pytest.fixture
def small_config(photos: Path) -> Callable[..., Config]:
    """``small_config(**sections)``: the SMALL config on the synthetic photos, updated."""

    def build(**changes: dict) -> Config:
        raw = merge(SMALL, {"data": {"hr_dirs": [str(photos / "photos")]}})
        return config_from_dict(merge(raw, changes))

    return build
