"""Training and validation datasets: HR photo crops, GT/LR pairs, reproducible loading.

Reproducibility scheme: every random choice of a training sample (crop
position, flip) and of a batch (the degradation) is drawn from seeds that the
:class:`EpochSampler` hands out in the main process, in a permutation fixed by
``(seed, epoch)``. A worker therefore holds no random state of its own: the
same seed and epoch give the same batches whatever the number of workers,
whether they persist between epochs, and which worker gets which batch.
"""

from __future__ import annotations

import logging
import os
import random
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from gtasr.degrade.pipeline import DegradationConfig, degrade_batch
from gtasr.errors import GtasrError, InputError
from gtasr.imageio import Image, list_images, read_image

log = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 2 * 1024**3
"""Decoded training photos are kept in RAM up to this many bytes (2 GiB)."""


def flatten_alpha(image: Image) -> np.ndarray:
    """RGB of ``image`` with any transparency composited onto white (float32 HxWx3)."""
    if image.alpha is None:
        return image.rgb
    alpha = image.alpha[..., None]
    return (image.rgb * alpha + (1.0 - alpha)).astype(np.float32)


def _pack(rgb: np.ndarray, bit_depth: int) -> np.ndarray:
    """Compact integer storage for the cache: uint8, or uint16 for 16-bit sources."""
    peak, dtype = (65535, np.uint16) if bit_depth == 16 else (255, np.uint8)
    return np.round(np.clip(rgb, 0.0, 1.0) * peak).astype(dtype)


def _unpack(pixels: np.ndarray) -> np.ndarray:
    peak = 65535.0 if pixels.dtype == np.uint16 else 255.0
    return pixels.astype(np.float32) / peak


def _to_chw(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 [0, 1] -> Tensor[3, H, W] in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).mul(2.0).sub(1.0)


def warn_skipped(skipped: Sequence[tuple[Path, str]], what: str) -> None:
    """One warning naming every skipped file and why."""
    if skipped:
        listing = "; ".join(f"{path}: {why}" for path, why in skipped)
        log.warning("skipped %d unusable %s: %s", len(skipped), what, listing)


class HRCropDataset(Dataset):
    """Random ``crop_size`` crops (with optional horizontal flip) of HR photos.

    ``folders`` are files, folders (searched recursively) or glob patterns.
    Every image is decoded once when the dataset is built: unreadable files
    and images with a side under ``crop_size`` are skipped with one warning
    listing them, and :class:`GtasrError` is raised when none is usable.
    Decoded images stay in RAM while they fit in ``cache_bytes``; the others
    are decoded again on each access. Grayscale, palette, CMYK and 16-bit
    files arrive as RGB from :func:`gtasr.imageio.read_image`; transparency is
    composited onto white.

    An item is ``{"x0": Tensor[3, crop, crop] in [-1, 1], "seed": int}``. The
    key is an index or an ``(index, seed)`` pair from :class:`EpochSampler`;
    the seed decides the crop and the flip and is passed on for the batch's
    degradation (see :class:`DegradingCollate`).
    """

    def __init__(
        self,
        folders: Sequence[str | os.PathLike[str]],
        crop_size: int = 256,
        hflip: bool = True,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_pixels: int | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(folders, (str, os.PathLike)):
            folders = [folders]
        self.crop_size = int(crop_size)
        self.hflip = hflip
        self.seed = int(seed)
        self.max_pixels = max_pixels
        self.paths: list[Path] = []
        self.sizes: list[tuple[int, int]] = []
        self._cache: dict[int, np.ndarray] = {}
        cached_bytes = 0
        skipped: list[tuple[Path, str]] = []
        for path in list_images(folders, recursive=True):
            try:
                image = read_image(path, max_pixels=max_pixels)
            except InputError as error:
                skipped.append((path, error.problem))
                continue
            if min(image.height, image.width) < self.crop_size:
                skipped.append(
                    (path, f"{image.width}x{image.height} is smaller than the {crop_size} px crop")
                )
                continue
            pixels = _pack(flatten_alpha(image), image.bit_depth)
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
        image = read_image(self.paths[index], max_pixels=self.max_pixels)
        return _pack(flatten_alpha(image), image.bit_depth)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor | int]:
        if isinstance(key, tuple):
            index, seed = int(key[0]), int(key[1])
        else:
            index = int(key)
            seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        rng = np.random.default_rng(seed)
        height, width = self.sizes[index]
        top = int(rng.integers(0, height - self.crop_size + 1))
        left = int(rng.integers(0, width - self.crop_size + 1))
        crop = self._pixels(index)[top : top + self.crop_size, left : left + self.crop_size]
        if self.hflip and rng.uniform() < 0.5:
            crop = crop[:, ::-1]
        return {"x0": _to_chw(_unpack(crop)), "seed": seed}


class EpochSampler(Sampler):
    """Shuffled ``(index, seed)`` keys for one epoch, fixed by ``(seed, epoch)``.

    ``num_samples`` (default: the dataset size) keys are drawn per epoch,
    cycling through fresh permutations when it exceeds the dataset size. Call
    :meth:`set_epoch` before iterating each epoch.
    """

    def __init__(self, dataset_size: int, seed: int = 0, num_samples: int | None = None) -> None:
        if dataset_size < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.dataset_size = int(dataset_size)
        self.seed = int(seed)
        self.num_samples = int(num_samples or dataset_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        indices: list[int] = []
        while len(indices) < self.num_samples:
            indices.extend(rng.permutation(self.dataset_size).tolist())
        seeds = rng.integers(0, 2**63 - 1, size=self.num_samples).tolist()
        return iter(zip(indices[: self.num_samples], seeds, strict=True))


@dataclass
class DegradingCollate:
    """``collate_fn`` that stacks crops and degrades them: ``{"x0", "y", "y0"}`` in [-1, 1].

    The degradation generator is seeded from the batch's sample seeds, so a
    batch is the same whichever worker builds it. Running it in the workers
    keeps the degradation off the training process.
    """

    config: DegradationConfig

    def __call__(self, items: Sequence[dict[str, torch.Tensor | int]]) -> dict[str, torch.Tensor]:
        x0 = torch.stack([item["x0"] for item in items])
        seeds = [int(item["seed"]) for item in items]
        generator = torch.Generator()
        generator.manual_seed(int(np.random.SeedSequence(seeds).generate_state(1)[0]))
        y, y0 = degrade_batch(x0, self.config, generator)
        return {"x0": x0, "y": y, "y0": y0}


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


class PairedFolderDataset(Dataset):
    """GT and LR images of two folders matched by file stem (validation pairs).

    Files present on one side only are skipped with one warning; no pair at
    all raises :class:`GtasrError`. An item is ``{"name": stem,
    "gt": Tensor[3, H, W], "lq": Tensor[3, H/scale, W/scale]}`` in [-1, 1];
    a pair whose sizes do not differ by ``scale`` raises :class:`InputError`.
    """

    def __init__(
        self,
        gt_folder: str | os.PathLike[str],
        lq_folder: str | os.PathLike[str],
        scale: int = 4,
        max_pixels: int | None = None,
    ) -> None:
        self.scale = int(scale)
        self.max_pixels = max_pixels
        gt = {p.stem: p for p in list_images([gt_folder])}
        lq = {p.stem: p for p in list_images([lq_folder])}
        self.names = sorted(gt.keys() & lq.keys())
        self.pairs = [(gt[name], lq[name]) for name in self.names]
        unmatched = [(gt[n], "no LR image of this name") for n in sorted(gt.keys() - lq.keys())]
        unmatched += [(lq[n], "no GT image of this name") for n in sorted(lq.keys() - gt.keys())]
        warn_skipped(unmatched, "validation images")
        if not self.pairs:
            raise GtasrError(f"no GT/LR pairs with matching names in {gt_folder} and {lq_folder}")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        gt_path, lq_path = self.pairs[index]
        gt = read_image(gt_path, max_pixels=self.max_pixels)
        lq = read_image(lq_path, max_pixels=self.max_pixels)
        if (gt.height, gt.width) != (lq.height * self.scale, lq.width * self.scale):
            raise InputError(
                gt_path,
                f"{gt.width}x{gt.height} is not {self.scale}x its LR {lq_path} "
                f"({lq.width}x{lq.height})",
            )
        return {
            "name": self.names[index],
            "gt": _to_chw(flatten_alpha(gt)),
            "lq": _to_chw(flatten_alpha(lq)),
        }
