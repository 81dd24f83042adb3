"""Training photos: HR crops decoded once, cached in RAM, cut and flipped by a seed.

A crop is a pure function of (photo index, seed): the seed decides the
position, the flip and (with ``short_side``) the scale, so a worker holds no
random state of its own.
:mod:`gtasr.train.batches` decides which photo and seed each sample of a run
gets.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gtasr.errors import GtasrError, InputError
from gtasr.imageio import Image, quantize, read_image, to_tensor
from gtasr.listing import list_images

log = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 2 * 1024**3
"""Decoded training photos are kept in RAM up to this many bytes (2 GiB)."""


def flatten_alpha(image: Image) -> np.ndarray:
    """RGB of ``image`` with any transparency composited onto white (float32 HxWx3)."""
    if image.alpha is None:
        return image.rgb
    alpha = image.alpha[..., None]
    return (image.rgb * alpha + (1.0 - alpha)).astype(np.float32)


def _cached_pixels(image: Image) -> np.ndarray:
    """Compact integer storage for the cache: uint8, or uint16 for 16-bit sources."""
    return quantize(flatten_alpha(image), image.bit_depth)


def _float_pixels(pixels: np.ndarray) -> np.ndarray:
    peak = 65535.0 if pixels.dtype == np.uint16 else 255.0
    return pixels.astype(np.float32) / peak


def warn_skipped(skipped: Sequence[tuple[Path, str]], what: str) -> None:
    """One warning naming every skipped file and why."""
    if skipped:
        listing = "; ".join(f"{path}: {why}" for path, why in skipped)
        log.warning("skipped %d unusable %s: %s", len(skipped), what, listing)


class HRCropDataset:
    """Random ``crop_size`` crops (with optional horizontal flip) of HR photos.

    ``folders`` are files, folders (searched recursively) or glob patterns.
    Every image is decoded once when the dataset is built: unreadable files
    and images with a side under ``crop_size`` are skipped with one warning
    listing them, and :class:`GtasrError` is raised when none is usable.
    Decoded images stay in RAM while they fit in ``cache_bytes``; the others
    are decoded again on each access. Grayscale, palette, CMYK and 16-bit
    files arrive as RGB from :func:`gtasr.imageio.read_image`; transparency is
    composited onto white.

    ``short_side=(low, high)`` takes each crop from the photo as if resized so
    that its shorter side is drawn log-uniformly in [low, high] (a photo is never
    enlarged): a square of the photo is cut and shrunk to ``crop_size`` with an
    antialiased bicubic filter. Wallpaper-sized photos at their own scale give
    crops of smooth, detail-poor surfaces, far from what an x4 upscaler meets
    (web photos, and test sets made by shrinking photos to 256 px); see
    docs/training-diagnosis.md.

    ``dataset[index, seed]`` is the crop of photo ``index`` that ``seed``
    picks, a Tensor[3, crop, crop] in [-1, 1].
    """

    def __init__(
        self,
        folders: Sequence[str | os.PathLike[str]],
        crop_size: int = 256,
        hflip: bool = True,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        short_side: Sequence[int] | None = None,
    ) -> None:
        if isinstance(folders, (str, os.PathLike)):
            folders = [folders]
        self.crop_size = int(crop_size)
        self.hflip = hflip
        self.short_side = None if short_side is None else (int(short_side[0]), int(short_side[1]))
        self.paths: list[Path] = []
        self.sizes: list[tuple[int, int]] = []
        self._cache: dict[int, np.ndarray] = {}
        cached_bytes = 0
        skipped: list[tuple[Path, str]] = []
        for path in list_images(folders, recursive=True):
            try:
                image = read_image(path)
            except InputError as error:
                skipped.append((path, error.problem))
                continue
            if min(image.height, image.width) < self.crop_size:
                skipped.append(
                    (path, f"{image.width}x{image.height} is smaller than the {crop_size} px crop")
                )
                continue
            pixels = _cached_pixels(image)
            if cached_bytes + pixels.nbytes <= cache_bytes:
                self._cache[len(self.paths)] = pixels
                cached_bytes += pixels.nbytes
            self.paths.append(path)
            self.sizes.append((image.height, image.width))
        warn_skipped(skipped, "training images")
        if not self.paths:
            where = ", ".join(os.fspath(f) for f in folders)
            raise GtasrError(f"no usable training images in {where}")
        log.info(
            "%d training images, %d cached in RAM (%.0f MiB)",
            len(self.paths),
            len(self._cache),
            cached_bytes / 2**20,
        )

    def __len__(self) -> int:
        return len(self.paths)

    def _pixels(self, index: int) -> np.ndarray:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        return _cached_pixels(read_image(self.paths[index]))

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        index, seed = int(key[0]), int(key[1])
        rng = np.random.default_rng(seed)
        height, width = self.sizes[index]
        side = self._region_side(rng, min(height, width))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        crop = self._pixels(index)[top : top + side, left : left + side]
        if self.hflip and rng.uniform() < 0.5:
            crop = crop[:, ::-1]
        tensor = to_tensor(_float_pixels(crop))
        if side != self.crop_size:
            size = (self.crop_size, self.crop_size)
            tensor = F.interpolate(tensor, size=size, mode="bicubic", antialias=True).clamp(-1, 1)
        return tensor[0]

    def _region_side(self, rng: np.random.Generator, shorter: int) -> int:
        """Side of the square cut from the photo: ``crop_size`` at the photo's own scale."""
        if self.short_side is None:
            return self.crop_size
        low, high = (min(value, shorter) for value in self.short_side)
        target = math.exp(rng.uniform(math.log(low), math.log(high)))
        return min(shorter, max(self.crop_size, round(self.crop_size * shorter / target)))


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker set-up: one thread each, global RNGs seeded per worker.

    The datasets here take no random state from globals (see the module
    docstring); the global seeding only keeps third-party code reproducible.
    Workers ignore SIGINT and SIGTERM: Ctrl-C or a job scheduler signals the
    whole process group, and the main process must stay in charge of stopping
    (it writes a checkpoint, then shuts its workers down); a worker killed by
    the signal would instead abort the main process mid-step.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
