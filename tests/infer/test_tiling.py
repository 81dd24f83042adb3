"""Seamless tiling: noise field, tile grid, feathering, and tiled == untiled."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from gtasr.errors import GtasrError
from gtasr.imageio import read_image
from gtasr.infer.noise import NoiseField
from gtasr.infer.tiling import (
    MIN_TILE,
    MIN_TILE_OVERLAP,
    _y0_tile,
    axis_starts,
    feather,
    pad_to_multiple,
    plan_tiles,
    seamless_tiling,
    tiled_upscale,
)
from gtasr.infer.upscaler import Upscaler
from gtasr.method.schedule import upsample_lr


def test_noise_field_crops_agree_and_are_standard_normal() -> None:
    field = NoiseField(seed=5)
    full = field.crop(0, 0, 300, 260)
    np.testing.assert_array_equal(field.crop(70, 130, 200, 100), full[..., 70:270, 130:230])
    assert torch.equal(NoiseField(seed=5).crop(10, 10, 20, 20), full[..., 10:30, 10:30])
    assert not torch.equal(field.crop(0, 0, 64, 64, step=1), full[..., :64, :64])
    assert not torch.equal(NoiseField(seed=6).crop(0, 0, 64, 64), full[..., :64, :64])
    assert abs(float(full.mean())) < 0.01 and abs(float(full.std()) - 1) < 0.01
    # neighbouring blocks are independent draws, not shifted copies
    assert not torch.equal(full[..., :128, :128], full[..., 128:256, :128])


@pytest.mark.parametrize(("length", "tile", "overlap"), [(96, 32, 8), (100, 40, 12), (24, 32, 8)])
def test_axis_starts_cover_with_overlap(length: int, tile: int, overlap: int) -> None:
    stride = 4
    starts = axis_starts(length, tile, overlap, stride)
    assert starts[0] == 0 and all(s % stride == 0 for s in starts)
    if tile >= length:
        assert starts == (0,)
        return
    assert starts[-1] + tile == length
    for first, second in itertools.pairwise(starts):
        assert first + tile - second >= overlap


def test_plan_rounds_tile_and_overlap_to_the_stride() -> None:
    grid = plan_tiles(64, 40, tile=30, overlap=5, stride=8)
    assert (grid.tile_height, grid.tile_width, grid.overlap) == (24, 24, 8)
    assert grid.tops == (0, 16, 32, 40) and grid.lefts == (0, 16)
    assert plan_tiles(64, 40, tile=None, overlap=8, stride=8).count == 1
    assert plan_tiles(64, 40, tile=64, overlap=8, stride=8).count == 1


def test_feather_ramps_only_towards_neighbours() -> None:
    inner = feather(length=96, start=32, tile=32, ramp=8, scale=4)
    assert inner.shape == (128,)
    assert 0 < float(inner[0]) < 0.05 and 0 < float(inner[-1]) < 0.05
    assert torch.all(inner[32:96] == 1)
    assert torch.all(inner[:32].diff() > 0)
    border = feather(length=96, start=0, tile=32, ramp=8, scale=4)
    assert float(border[0]) == 1.0 and float(border[-1]) < 0.05


def test_pad_to_multiple_reflects_or_replicates() -> None:
    y = torch.arange(15.0).reshape(1, 1, 3, 5)
    padded = pad_to_multiple(y, 4)
    assert padded.shape == (1, 1, 4, 8)
    assert torch.equal(padded[..., :3, :5], y)
    assert torch.equal(padded[0, 0, 3, :5], y[0, 0, 1])  # reflected row
    tiny = pad_to_multiple(torch.ones(1, 1, 1, 1), 4)
    assert tiny.shape == (1, 1, 4, 4) and torch.all(tiny == 1)


def test_tile_y0_equals_the_full_image_y0() -> None:
    y = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    full = upsample_lr(y, 4)
    for top, left in [(0, 0), (8, 12), (16, 20)]:
        tile = _y0_tile(y, top, left, 8, 12, 4)
        expected = full[..., top * 4 : (top + 8) * 4, left * 4 : (left + 12) * 4]
        torch.testing.assert_close(tile, expected, atol=1e-6, rtol=0)


def test_pointwise_sampler_is_identical_tiled_and_untiled() -> None:
    """With no spatial context in the sampler, tiling must change nothing at all."""
    noise = NoiseField(seed=3)
    seen: list[tuple[int, int]] = []

    def sample(y_tile: torch.Tensor, y0: torch.Tensor, top: int, left: int) -> torch.Tensor:
        seen.append((y_tile.shape[-2], y_tile.shape[-1]))
        eps = noise.crop(top, left, y0.shape[-2], y0.shape[-1])
        return torch.tanh(y0 + 0.5 * eps)

    y = torch.rand(1, 3, 37, 50, generator=torch.Generator().manual_seed(1)) * 2 - 1
    whole = tiled_upscale(sample, y, scale=4, stride=4)
    seen.clear()
    tiled = tiled_upscale(sample, y, scale=4, stride=4, tile=16, overlap=4)
    assert len(seen) == 12 and set(seen) == {(16, 16)}  # memory bounded by the tile
    assert whole.shape == tiled.shape == (1, 3, 148, 200)
    torch.testing.assert_close(tiled, whole, atol=2e-6, rtol=0)


def test_on_tile_reports_each_tile_after_it_is_done() -> None:
    calls: list[tuple[int, int]] = []
    done_before_call: list[int] = []

    def sample(y_tile: torch.Tensor, y0: torch.Tensor, top: int, left: int) -> torch.Tensor:
        done_before_call.append(len(calls))
        return y0

    def on_tile(done: int, total: int) -> None:
        calls.append((done, total))

    y = torch.zeros(1, 3, 37, 50)
    tiled_upscale(sample, y, scale=4, stride=4, tile=16, overlap=4, on_tile=on_tile)
    assert calls == [(i, 12) for i in range(1, 13)]
    assert done_before_call == list(range(12))
    calls.clear()
    tiled_upscale(sample, y, scale=4, stride=4, on_tile=on_tile)
    assert calls == [(1, 1)]


@pytest.mark.slow
def test_the_smallest_accepted_tile_is_seamless(
    shared_data: Path, caplog: pytest.LogCaptureFixture, one_thread: None
) -> None:
    """The bundled model on a detailed photo: a tile and overlap below the minimum are
    raised to it, with a warning, and the result is within 40 dB of the untiled one."""
    up = Upscaler.from_pretrained(None, device="cpu")
    rgb = read_image(shared_data / "realset65" / "OST_009.png").rgb[:256, :256]
    whole = up.upscale_rgb(rgb, seed=1, tile=None)
    tiles: list[tuple[int, int]] = []
    with caplog.at_level(logging.WARNING):
        smallest = up.upscale_rgb(
            rgb, seed=1, tile=3, tile_overlap=0, on_tile=lambda i, n: tiles.append((i, n))
        )
    assert f"tile 3 is below the smallest seamless tile; using {MIN_TILE}" in caplog.text
    assert f"overlap 0 is below the smallest seamless overlap; using {MIN_TILE_OVERLAP}" in (
        caplog.text
    )
    assert tiles[-1] == (4, 4)  # 2 x 2 tiles of MIN_TILE over 256 x 256
    psnr = 10 * np.log10(1.0 / np.mean((whole - smallest) ** 2))
    assert psnr >= 40.0, psnr


def test_seamless_tiling_keeps_whole_image_and_larger_values() -> None:
    assert seamless_tiling(None, 0) == (None, 0)
    with pytest.raises(GtasrError, match="None for the whole image, not 0"):
        seamless_tiling(0, 0)  # None is the one way to say "whole image" in the core
    assert seamless_tiling(512, 32) == (512, 32)
    assert seamless_tiling(MIN_TILE - 1, MIN_TILE_OVERLAP - 1) == (MIN_TILE, MIN_TILE_OVERLAP)
