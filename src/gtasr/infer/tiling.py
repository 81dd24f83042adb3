"""Seamless tiled inference: overlapping LR tiles, feathered blending, one noise field.

Large inputs do not fit through the network at once, so the LR image is cut
into overlapping tiles (METHOD §6). Three things keep the seams invisible:

* every tile's starting state ``y0 + eps`` is cut from canvas-wide fields:
  ``y0`` is computed from the LR tile plus a few pixels of context, which is
  exactly the full image's bicubic upsampling there, and ``eps`` comes from
  one :class:`~gtasr.infer.noise.NoiseField` (the caller crops it by the HR
  position passed to it);
* tiles overlap by ``overlap`` LR pixels and each tile's weight ramps
  linearly from ~0 at an inner edge to 1 at ``overlap`` pixels inside, so the
  blend is a smooth cross-fade; the border of the image keeps full weight;
* the image is reflect-padded at the bottom and right to a multiple of the
  network's stride, and tile positions are multiples of it, so every tile
  sees the same alignment to the network's down-sampling grid.

Tile weights are separable and tiles form a grid, so the weight normaliser is
the outer product of two 1-D sums: besides the network's per-tile memory,
only the output canvas is held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gtasr.errors import GtasrError
from gtasr.method.schedule import upsample_lr

TileFunction = Callable[[Tensor, Tensor, int, int], Tensor]
"""``fn(y_tile, y0_tile, top_hr, left_hr) -> HR tile``: the sampler for one tile.

``y_tile`` is Tensor[1, C, h, w], ``y0_tile`` its bicubic x4 (Tensor[1, C, 4h, 4w]);
``top_hr``/``left_hr`` locate the tile on the HR canvas (to crop the noise field).
"""

TileProgress = Callable[[int, int], None]
"""``on_tile(done, total)``: called after each tile, e.g. to drive a progress bar."""

log = logging.getLogger(__name__)

Y0_CONTEXT = 4
"""LR pixels of context used when upsampling a tile (bicubic reads two on each side)."""

MIN_TILE = 192
"""Smallest LR tile side used: a tile gives the network only its own pixels as context, and
below this the tiled picture departs visibly from the untiled one (docs/failure-behaviour.md,
Bounds, has the measurements)."""

MIN_TILE_OVERLAP = 16
"""Smallest overlap of neighbouring tiles in LR pixels: the cross-fade needs room."""


def seamless_tiling(tile: int | None, overlap: int) -> tuple[int | None, int]:
    """``tile`` and ``overlap`` raised to :data:`MIN_TILE` and :data:`MIN_TILE_OVERLAP`.

    ``tile`` None is the whole image at once, the one way to say it (the command line's
    and the page's 0 become None where they enter). Raising a value logs a warning that
    says so, so callers round once (a batch warns once, not per image).
    """
    if tile is not None and tile < 1:
        raise GtasrError(f"tile must be positive, or None for the whole image, not {tile}")
    if overlap < 0:
        raise GtasrError(f"tile overlap must not be negative, not {overlap}")
    if tile and tile < MIN_TILE:
        log.warning("tile %d is below the smallest seamless tile; using %d", tile, MIN_TILE)
        tile = MIN_TILE
    if tile and overlap < MIN_TILE_OVERLAP:
        log.warning(
            "tile overlap %d is below the smallest seamless overlap; using %d",
            overlap,
            MIN_TILE_OVERLAP,
        )
        overlap = MIN_TILE_OVERLAP
    return tile, overlap


@dataclass(frozen=True)
class TileGrid:
    """Tile positions along both axes of a padded LR image (all in LR pixels)."""

    tile_height: int
    tile_width: int
    tops: tuple[int, ...]
    lefts: tuple[int, ...]
    overlap: int

    @property
    def count(self) -> int:
        return len(self.tops) * len(self.lefts)


def axis_starts(length: int, tile: int, overlap: int, stride: int) -> tuple[int, ...]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with >= ``overlap`` overlap.

    The last tile is aligned with the end, so it may overlap its neighbour more.
    """
    if tile >= length:
        return (0,)
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    if any(s % stride for s in starts):
        raise ValueError(f"tile starts {starts} are not multiples of the stride {stride}")
    return tuple(starts)


def plan_tiles(height: int, width: int, tile: int | None, overlap: int, stride: int) -> TileGrid:
    """Tile grid for a padded LR image of ``height`` x ``width`` (multiples of ``stride``).

    ``tile`` (None: one tile; :func:`seamless_tiling` has checked it) is rounded down to a
    multiple of the stride, as the network's windows need; ``overlap`` is rounded up to one
    and capped at half a tile.
    """
    if height % stride or width % stride:
        raise ValueError(f"padded size {height}x{width} is not a multiple of {stride}")
    if tile is None or (tile >= height and tile >= width):
        return TileGrid(height, width, (0,), (0,), 0)
    size = max(stride, tile // stride * stride)
    lap = min(-(-max(0, overlap) // stride) * stride, size // 2 // stride * stride)
    tile_height, tile_width = min(size, height), min(size, width)
    return TileGrid(
        tile_height=tile_height,
        tile_width=tile_width,
        tops=axis_starts(height, tile_height, lap, stride),
        lefts=axis_starts(width, tile_width, lap, stride),
        overlap=lap,
    )


def feather(length: int, start: int, tile: int, ramp: int, scale: int) -> Tensor:
    """1-D blending weight of a tile at ``start`` (LR) on an axis of ``length`` (LR), in HR pixels.

    The weight rises linearly over ``ramp * scale`` HR pixels at each edge that
    has a neighbouring tile (never to exactly 0) and is 1 elsewhere.
    """
    weight = torch.ones(tile * scale, dtype=torch.float32)
    span = ramp * scale
    if span == 0:
        return weight
    rise = (torch.arange(span, dtype=torch.float32) + 0.5) / span
    if start > 0:
        weight[:span] = rise
    if start + tile < length:
        weight[-span:] = torch.minimum(weight[-span:], rise.flip(0))
    return weight


def pad_to_multiple(y: Tensor, stride: int) -> Tensor:
    """Pad ``y`` (NCHW) at the bottom and right to multiples of ``stride``.

    Reflection where the image is large enough, edge replication otherwise
    (reflection cannot pad by more than the size minus one).
    """
    height, width = y.shape[-2:]
    pad_h, pad_w = (-height) % stride, (-width) % stride
    if pad_h == 0 and pad_w == 0:
        return y
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(y, (0, pad_w, 0, pad_h), mode=mode)


def _y0_tile(
    y: Tensor, top: int, left: int, height: int, width: int, scale: int, clamp: bool = True
) -> Tensor:
    """Bicubic x``scale`` of the tile, identical to the same crop of the full image's y0."""
    full_h, full_w = y.shape[-2:]
    t0, l0 = max(0, top - Y0_CONTEXT), max(0, left - Y0_CONTEXT)
    t1 = min(full_h, top + height + Y0_CONTEXT)
    l1 = min(full_w, left + width + Y0_CONTEXT)
    up = upsample_lr(y[..., t0:t1, l0:l1], scale, clamp)
    r0, c0 = (top - t0) * scale, (left - l0) * scale
    return up[..., r0 : r0 + height * scale, c0 : c0 + width * scale]


def tiled_upscale(
    fn: TileFunction,
    y: Tensor,
    *,
    scale: int,
    stride: int,
    tile: int | None = None,
    overlap: int = 32,
    on_tile: TileProgress | None = None,
    clamp_y0: bool = True,
) -> Tensor:
    """Run ``fn`` over tiles of LR ``y`` (Tensor[1, C, H, W]) and blend to Tensor[1, C, sH, sW].

    The result is a float32 CPU tensor (the canvas never lives on the
    accelerator). With ``tile`` None or at least the padded size, ``fn`` sees
    the whole image once. ``on_tile(done, total)`` is called after every tile;
    ``clamp_y0`` chooses :func:`upsample_lr`'s clamp.
    """
    report = on_tile or _no_progress
    height, width = y.shape[-2:]
    padded = pad_to_multiple(y, stride)
    full_h, full_w = padded.shape[-2:]
    grid = plan_tiles(full_h, full_w, tile, overlap, stride)
    if grid.count == 1:
        y0 = upsample_lr(padded, scale, clamp_y0)
        out = fn(padded, y0, 0, 0).float().cpu()
        report(1, 1)
        return out[..., : height * scale, : width * scale]
    channels = y.shape[1]
    canvas = torch.zeros((1, channels, full_h * scale, full_w * scale), dtype=torch.float32)
    norm_rows = torch.zeros(full_h * scale, dtype=torch.float32)
    norm_cols = torch.zeros(full_w * scale, dtype=torch.float32)
    th, tw = grid.tile_height, grid.tile_width
    col_weights = {left: feather(full_w, left, tw, grid.overlap, scale) for left in grid.lefts}
    for left, weight in col_weights.items():
        norm_cols[left * scale : (left + tw) * scale] += weight
    done = 0
    for top in grid.tops:
        row_weight = feather(full_h, top, th, grid.overlap, scale)
        norm_rows[top * scale : (top + th) * scale] += row_weight
        for left in grid.lefts:
            y_tile = padded[..., top : top + th, left : left + tw]
            y0 = _y0_tile(padded, top, left, th, tw, scale, clamp_y0)
            out = fn(y_tile, y0, top * scale, left * scale).float().cpu()
            weight = row_weight[:, None] * col_weights[left][None, :]
            rows = slice(top * scale, (top + th) * scale)
            cols = slice(left * scale, (left + tw) * scale)
            canvas[..., rows, cols].addcmul_(out, weight)
            done += 1
            report(done, grid.count)
    canvas /= norm_rows[:, None] * norm_cols[None, :]
    return canvas[..., : height * scale, : width * scale]


def _no_progress(done: int, total: int) -> None:
    """The default ``on_tile``: nobody is watching."""
