"""Comparison grids: the same crop of LR | bicubic | model A | model B | ... | GT, side by side.

One row per chosen image, one column per source, every crop taken from the
same box in HR coordinates. The LR column is the LR image upscaled x4 by pixel
repetition (nearest neighbour), so the box shows the input the models saw; the
bicubic column is Pillow's bicubic x4 of the 8-bit LR (the usual baseline).
Each panel is captioned with its PSNR-Y against the GT crop, and the same
numbers go to a JSON file beside the PNG. Without GT (real photos), the grid
has no GT column and no PSNR, and the box is in the coordinates of the x4
outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gtasr.data.pairs import SCALE, images_by_stem, read_pair
from gtasr.errors import GtasrError, InputError
from gtasr.eval.diagnostics import new_figure, save_figure
from gtasr.eval.metrics import psnr_y
from gtasr.imageio import read_image
from gtasr.infer.resample import resize


@dataclass(frozen=True)
class Box:
    """A crop rectangle in HR pixel coordinates: left x, top y, width w, height h."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> Box:
        """Parse ``x,y,w,h`` (non-negative integers, positive size)."""
        try:
            x, y, w, h = (int(part) for part in text.split(","))
        except ValueError as error:
            raise GtasrError(f"--box {text!r}: expected four integers x,y,w,h") from error
        if min(x, y) < 0 or min(w, h) <= 0:
            raise GtasrError(f"--box {text!r}: need x, y >= 0 and w, h > 0")
        return cls(x, y, w, h)

    def crop(self, rgb: np.ndarray) -> np.ndarray:
        """The box's pixels of an HxWx3 array."""
        return rgb[self.y : self.y + self.h, self.x : self.x + self.w]

    def fits(self, width: int, height: int) -> bool:
        return self.x + self.w <= width and self.y + self.h <= height


def parse_named_dir(text: str) -> tuple[str, Path]:
    """``NAME=DIR`` -> (NAME, Path(DIR))."""
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise GtasrError(f"--sr {text!r}: expected NAME=DIR")
    return name, Path(folder)


def _find(folder: Path, stem: str) -> Path:
    files = images_by_stem(folder)
    if stem not in files:
        raise InputError(folder, f"no image with stem {stem!r}")
    return files[stem]


def image_columns(
    stem: str, lq_dir: Path, gt_dir: Path | None, sr_dirs: Sequence[tuple[str, Path]], box: Box
) -> list[tuple[str, np.ndarray]]:
    """The labelled crops of one image, left to right: LR, bicubic, each SR folder, and
    the GT where ``gt_dir`` is given. Every SR image must be x4 the LR image."""
    lq_path = _find(lq_dir, stem)
    gt_path = _find(gt_dir, stem) if gt_dir is not None else None
    if gt_path is not None:
        lr, gt = read_pair(lq_path, gt_path, SCALE)
    else:
        lr = read_image(lq_path)
    width, height = SCALE * lr.width, SCALE * lr.height
    if not box.fits(width, height):
        raise InputError(gt_path or lq_path, f"box {box} does not fit in {width}x{height}")
    nearest = np.repeat(np.repeat(lr.rgb, SCALE, axis=0), SCALE, axis=1)
    bicubic = resize(lr.rgb, width, height, "bicubic", 8)
    columns = [("LR (nearest x4)", nearest), ("bicubic", bicubic)]
    for name, folder in sr_dirs:
        sr_path = _find(folder, stem)
        sr = read_image(sr_path)
        if (sr.width, sr.height) != (width, height):
            raise InputError(
                sr_path, f"size {sr.width}x{sr.height} is not x4 of {lq_path} ({width}x{height})"
            )
        columns.append((name, sr.rgb))
    if gt_path is not None:
        columns.append(("GT", gt.rgb))
    return [(label, box.crop(rgb)) for label, rgb in columns]


def crop_psnr(crop: np.ndarray, reference: np.ndarray) -> float:
    """PSNR-Y of a crop against the GT crop (inputs float [0, 1])."""
    return psnr_y(np.round(crop * 255.0), np.round(reference * 255.0))


def build_grid(
    stems: Sequence[str],
    boxes: Sequence[Box],
    lq_dir: Path,
    gt_dir: Path | None,
    sr_dirs: Sequence[tuple[str, Path]],
) -> list[tuple[str, Box, list[tuple[str, np.ndarray]]]]:
    """Rows of the grid; one box for all images, or one per image."""
    if len(boxes) not in (1, len(stems)):
        raise GtasrError(f"give one --box for all images or one per image ({len(stems)})")
    chosen = list(boxes) * len(stems) if len(boxes) == 1 else list(boxes)
    return [
        (stem, box, image_columns(stem, lq_dir, gt_dir, sr_dirs, box))
        for stem, box in zip(stems, chosen, strict=True)
    ]


def _has_gt(columns: Sequence[tuple[str, np.ndarray]]) -> bool:
    return columns[-1][0] == "GT"


def grid_document(rows: Sequence[tuple[str, Box, list[tuple[str, np.ndarray]]]]) -> dict[str, Any]:
    """Every row's box and, with GT, the PSNR-Y of every panel against the GT crop (the
    JSON written beside the PNG)."""
    images = {}
    for stem, box, columns in rows:
        images[stem] = {"box": [box.x, box.y, box.w, box.h]}
        if _has_gt(columns):
            reference = columns[-1][1]
            images[stem]["psnr_y"] = {
                label: crop_psnr(crop, reference) for label, crop in columns[:-1]
            }
    return {"columns": [label for label, _ in rows[0][2]], "images": images}


def plot_grid(rows: Sequence[tuple[str, Box, list[tuple[str, np.ndarray]]]], path: Path) -> None:
    """Draw the crops (nearest-neighbour display), column labels on top, PSNR-Y under each
    where there is a GT."""
    columns = len(rows[0][2])
    figure = new_figure(2.2 * columns, 2.4 * len(rows))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for r, (stem, _box, panels) in enumerate(rows):
        reference = panels[-1][1] if _has_gt(panels) else None
        for c, (label, crop) in enumerate(panels):
            axis = axes[r][c]
            axis.imshow(np.clip(crop, 0, 1), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title(label, fontsize=9)
            if reference is not None and c < columns - 1:
                axis.set_xlabel(f"{crop_psnr(crop, reference):.2f} dB", fontsize=8)
            if c == 0:
                axis.set_ylabel(stem, fontsize=8)
    save_figure(figure, path)
