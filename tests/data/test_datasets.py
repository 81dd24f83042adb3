"""HR crop dataset: decoding, conversions, skipped files, crops as a function of the key."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from gtasr.data.datasets import HRCropDataset
from gtasr.errors import GtasrError, InputError

USABLE = {"rgb", "gray", "palette", "cmyk", "deep", "alpha"}
UNUSABLE = {"truncated", "tiny", "bomb", "notes"}


def test_usable_modes_load_and_bad_files_are_listed_in_one_warning(awkward_folder, caplog):
    with caplog.at_level(logging.WARNING):
        dataset = HRCropDataset([awkward_folder], crop_size=64)
    assert {p.stem for p in dataset.paths} == USABLE
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "skipped 4" in message
    for stem in UNUSABLE:
        assert stem in message
    for index in range(len(dataset)):
        crop = dataset[index, index]
        assert crop.shape == (3, 64, 64)
        assert crop.dtype == torch.float32
        assert crop.min() >= -1 and crop.max() <= 1


def test_grayscale_and_alpha_are_converted(awkward_folder):
    dataset = HRCropDataset([awkward_folder], crop_size=72, hflip=False)
    by_name = {p.stem: i for i, p in enumerate(dataset.paths)}
    gray = dataset[by_name["gray"], 0]
    torch.testing.assert_close(gray[0], gray[1])
    alpha = dataset[by_name["alpha"], 0]  # 72x72: the crop is the whole image
    assert torch.all(alpha[:, :8, :8] == 1.0)  # transparent corner composited onto white
    deep = dataset[by_name["deep"], 0]  # 16-bit grayscale
    torch.testing.assert_close(deep[0], deep[2])
    assert torch.unique(deep[0]).numel() > 10


def test_crops_are_a_function_of_the_key_and_cache_does_not_matter(awkward_folder):
    cached = HRCropDataset([awkward_folder], crop_size=48)
    uncached = HRCropDataset([awkward_folder], crop_size=48, cache_bytes=0)
    assert len(cached._cache) == len(cached) and not uncached._cache
    for key in [(0, 7), (2, 12345), (5, 99)]:
        torch.testing.assert_close(cached[key], uncached[key], atol=0, rtol=0)
    assert not torch.equal(cached[0, 1], cached[0, 2])


def test_crop_window_and_flip_match_the_source(tmp_path, image_tools):
    rows, cols = np.mgrid[0:70, 0:90]
    source = np.dstack([cols, rows, (rows + cols) % 256]).astype(np.uint8)  # position-coded
    image_tools.write_png(tmp_path / "coded.png", source)
    dataset = HRCropDataset(tmp_path, crop_size=32)  # a single folder, not a list
    reference = torch.from_numpy(source.astype(np.float32) / 255).permute(2, 0, 1) * 2 - 1
    flips, corners = 0, set()
    for seed in range(20):
        crop = dataset[0, seed]
        codes = ((crop + 1) * 127.5).round().long()
        flipped = bool(codes[0, 0, 0] > codes[0, 0, -1])
        left = int(codes[0, 0, -1 if flipped else 0])
        top = int(codes[1, 0, 0])
        window = reference[:, top : top + 32, left : left + 32]
        torch.testing.assert_close(crop, window.flip(-1) if flipped else window)
        flips += flipped
        corners.add((top, left))
    assert 3 <= flips <= 17
    assert len(corners) > 15


def test_short_side_shrinks_the_photo_by_the_drawn_scale(tmp_path, image_tools):
    rows, cols = np.mgrid[0:200, 0:240]
    ramp = np.dstack([cols, rows, cols // 2]).astype(np.uint8)  # one grey level per pixel
    image_tools.write_png(tmp_path / "ramp.png", ramp)
    dataset = HRCropDataset(tmp_path, crop_size=32, hflip=False, short_side=(50, 50))
    steps = []
    for seed in range(6):
        crop = ((dataset[0, seed] + 1) * 127.5).double()
        inner = crop[:, 4:-4, 4:-4]  # away from the window's edges
        across = (inner[0, :, 1:] - inner[0, :, :-1]).mean()
        down = (inner[1, 1:, :] - inner[1, :-1, :]).mean()
        steps += [float(across), float(down)]
    # shorter side 200 -> 50: each crop pixel spans 4 photo pixels, so 4 levels a pixel
    np.testing.assert_allclose(steps, 4.0, atol=0.02)


def test_short_side_draws_scales_between_its_bounds_and_never_enlarges(tmp_path, image_tools):
    rng = np.random.default_rng(0)
    image_tools.write_png(tmp_path / "a.png", rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    dataset = HRCropDataset(tmp_path, crop_size=32, short_side=(60, 240))
    sides = [dataset._region_side(np.random.default_rng(seed), 300) for seed in range(400)]
    assert min(sides) >= 40 and max(sides) <= 160  # 32 * 300 / 240 .. 32 * 300 / 60
    assert sum(side < 80 for side in sides) == pytest.approx(200, abs=40)  # log-uniform: 80 = mid
    torch.testing.assert_close(dataset[0, 7], dataset[0, 7])
    assert dataset[0, 7].shape == (3, 32, 32)
    assert dataset[0, 7].abs().max() <= 1
    assert 32 <= dataset._region_side(np.random.default_rng(1), 100) <= 54  # 100 -> 60..100
    assert dataset._region_side(np.random.default_rng(1), 50) == 32  # under low: own scale


def test_empty_and_missing_inputs_raise(tmp_path, awkward_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GtasrError, match="no usable training images"):
        HRCropDataset([empty])
    with pytest.raises(InputError, match="no such file"):
        HRCropDataset([tmp_path / "absent"])
    with pytest.raises(GtasrError, match="no usable"):
        HRCropDataset([awkward_folder], crop_size=512)
