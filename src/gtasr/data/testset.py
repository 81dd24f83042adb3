"""Build a synthetic GT/LR test set the way ResShift built ImageNet-Test (METHOD §8).

Each HR photo is resized so that its shorter side is ``size`` (ResShift's
SmallestMaxSize) and centre-cropped to ``size x size``: that is the GT. The LR
is the GT degraded by the chosen preset (``test``: the milder first-order
recipe; ``train``: the training recipe) down to ``size / 4``. Outputs are
``OUT/gt/NAME.png`` and ``OUT/lq/NAME.png``.

The resize is Pillow's antialiased bicubic on float samples (ResShift used
albumentations' bilinear, which aliases when shrinking large photos; the
GT should be clean). Everything is deterministic: the same inputs, ``seed``
and preset give byte-identical files, since each image's degradation is
seeded from ``(seed, its position in the sorted input list)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from gtasr.data.datasets import flatten_alpha, warn_skipped
from gtasr.degrade.pipeline import DegradationConfig, degrade_batch
from gtasr.errors import GtasrError, InputError
from gtasr.fileio import refuse_existing
from gtasr.imageio import read_image, to_numpy, to_tensor, write_image
from gtasr.listing import list_images

log = logging.getLogger(__name__)


def resize_shorter_side(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize float HxWx3 so that the shorter side is ``size`` (antialiased bicubic)."""
    height, width = rgb.shape[:2]
    ratio = size / min(height, width)
    new_w = size if width <= height else max(size, round(width * ratio))
    new_h = size if height < width else max(size, round(height * ratio))
    if (new_h, new_w) == (height, width):
        return rgb
    planes = [
        np.asarray(
            PIL.Image.fromarray(np.ascontiguousarray(rgb[..., c])).resize(
                (new_w, new_h), PIL.Image.Resampling.BICUBIC
            )
        )
        for c in range(3)
    ]
    return np.clip(np.stack(planes, axis=-1), 0.0, 1.0).astype(np.float32)


def centre_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """The central ``size x size`` window of an image at least that large."""
    height, width = rgb.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return rgb[top : top + size, left : left + size]


def ground_truth(rgb: np.ndarray, size: int) -> np.ndarray:
    """GT of one photo: shorter side to ``size``, centre crop, quantised to 8 bits."""
    crop = centre_crop(resize_shorter_side(rgb, size), size)
    return np.round(crop * 255.0).astype(np.float32) / 255.0


def degrade_one(gt: np.ndarray, config: DegradationConfig, seed: Sequence[int]) -> np.ndarray:
    """LR of one GT image (float HxWx3 in [0, 1]) for the seed ``seed``."""
    generator = torch.Generator()
    generator.manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1)[0]))
    y, _ = degrade_batch(to_tensor(gt), config, generator)
    return to_numpy(y)


@dataclass(frozen=True)
class TestSetReport:
    written: int
    skipped: int
    out: Path


def _output_names(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique by a numeric suffix where two inputs share one."""
    names, seen = [], {}
    for path in paths:
        count = seen.get(path.stem, 0)
        seen[path.stem] = count + 1
        names.append(path.stem if count == 0 else f"{path.stem}_{count}")
    return names


def make_testset(
    hr_inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    size: int = 256,
    count: int | None = None,
    seed: int = 0,
    preset: str = "test",
    max_pixels: int | None = None,
    overwrite: bool = False,
) -> TestSetReport:
    """Write ``count`` (default: all usable) GT/LR pairs from ``hr_inputs`` under ``out``.

    With ``count``, the photos are taken in a random order fixed by ``seed``
    until ``count`` are usable. Unreadable photos and photos with a side under
    ``size`` are skipped with one warning; :class:`GtasrError` if none is usable,
    or if a file it could write exists and ``overwrite`` is false.
    """
    if size < 16 or size % 4:
        raise GtasrError(f"--size must be a multiple of 4 and at least 16, got {size}")
    if isinstance(hr_inputs, (str, os.PathLike)):
        hr_inputs = [hr_inputs]
    try:
        config = DegradationConfig.preset(preset)
    except ValueError as error:
        raise GtasrError(f"--preset: {error}") from None
    paths = sorted(list_images(hr_inputs, recursive=True, skip_under=out))
    if not paths:
        raise GtasrError(f"no images found in {', '.join(map(os.fspath, hr_inputs))}")
    names = _output_names(paths)
    root = Path(out)
    targets = [root / folder / f"{name}.png" for name in names for folder in ("gt", "lq")]
    refuse_existing(targets, overwrite)
    order = list(range(len(paths)))
    if count is not None:
        order = np.random.default_rng(seed).permutation(len(paths)).tolist()
    skipped: list[tuple[Path, str]] = []
    written = 0
    for position in order:
        if count is not None and written >= count:
            break
        path = paths[position]
        try:
            image = read_image(path, max_pixels=max_pixels)
        except InputError as error:
            skipped.append((path, error.problem))
            continue
        if min(image.height, image.width) < size:
            skipped.append((path, f"{image.width}x{image.height} is smaller than {size} px"))
            continue
        gt = ground_truth(flatten_alpha(image), size)
        lq = degrade_one(gt, config, (seed, position))
        write_image(root / "gt" / f"{names[position]}.png", gt)
        write_image(root / "lq" / f"{names[position]}.png", lq)
        written += 1
    warn_skipped(skipped, "photos")
    if written == 0:
        raise GtasrError("no usable photos: nothing written")
    return TestSetReport(written=written, skipped=len(skipped), out=root)
