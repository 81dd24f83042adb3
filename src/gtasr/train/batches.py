"""Training batches as a pure function of the step: (x0, y, y0) for rank r at step s.

Sample ``p`` of the run (counting over steps, ranks and batch positions) is
the image ``perm_e[p mod n]`` of a per-epoch permutation ``perm_e`` (like
DistributedSampler: every rank sees different images, each image once per
epoch), cropped and flipped by :class:`gtasr.data.datasets.HRCropDataset`
with a seed derived from ``p``. The degradation
of a batch uses a generator seeded by (step, rank). Nothing depends on
earlier batches, so a resumed run and a run with a different number of loader
workers see identical data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gtasr.data.datasets import HRCropDataset
from gtasr.degrade.pipeline import DegradationConfig, degrade_batch, round8
from gtasr.errors import GtasrError
from gtasr.method.schedule import upsample_lr
from gtasr.train.seeding import derive_seed, generator

Degrader = Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
"""HR batch in [-1, 1] (B,3,H,W) + generator -> (y, y0) in [-1, 1], both 8-bit valued."""


def bicubic_degrade(hr: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean x4 degradation (antialiased bicubic, 8-bit rounding); draws nothing."""
    del gen
    y = round8(F.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True))
    return y, round8(upsample_lr(y))


def make_degrader(name: str) -> Degrader:
    """The degradation named by ``data.degradation``: "bicubic" or a gtasr.degrade preset."""
    if name == "bicubic":
        return bicubic_degrade
    try:
        return PresetDegrader(DegradationConfig.preset(name))
    except ValueError as error:
        raise GtasrError(f"config key 'data.degradation': {error}") from None


@dataclass(frozen=True)
class PresetDegrader:
    """:func:`~gtasr.degrade.pipeline.degrade_batch` with one preset (picklable for loader
    workers)."""

    settings: DegradationConfig

    def __call__(self, hr: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return degrade_batch(hr, self.settings, gen)


@dataclass
class StepBatches(torch.utils.data.Dataset):
    """Item ``i`` is micro-batch ``i`` of this rank (i = step * accumulation + micro).

    Its samples are those of the run-wide micro-batch ``g = i * world_size + rank``, so
    K processes give the same samples as one process accumulating K micro-batches.
    """

    photos: HRCropDataset
    batch_size: int
    seed: int
    rank: int
    world_size: int
    degrader: Degrader | None  # None: HR crops only, degraded on the device

    def __post_init__(self) -> None:
        self._perm_epoch = -1
        self._perm: list[int] = []

    def __len__(self) -> int:
        return 2**62

    def _image_index(self, position: int) -> int:
        count = len(self.photos)
        epoch = position // count
        if epoch != self._perm_epoch:
            gen = generator(derive_seed(self.seed, "data", epoch, count))
            self._perm = torch.randperm(count, generator=gen).tolist()
            self._perm_epoch = epoch
        return self._perm[position % count]

    def crop(self, position: int) -> torch.Tensor:
        """The [-1, 1] crop of sample ``position`` (crop and flip seeded by the position)."""
        key = (self._image_index(position), derive_seed(self.seed, "data", position))
        return self.photos[key]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        micro_batch = global_micro_batch(index, self.rank, self.world_size)
        first = micro_batch * self.batch_size
        hr = torch.stack([self.crop(first + i) for i in range(self.batch_size)])
        if self.degrader is None:
            return {"x0": hr}
        y, y0 = self.degrader(hr, generator(derive_seed(self.seed, "degrade", micro_batch)))
        return {"x0": hr, "y": y, "y0": y0}


def global_micro_batch(index: int, rank: int, world_size: int) -> int:
    """Run-wide number of this rank's micro-batch ``index`` (seeds data, noise and dropout)."""
    return index * world_size + rank
