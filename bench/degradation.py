"""Benchmark: degraded 256 -> 64 training pairs per second on 2 CPU cores, batch 8.

Goal: the data path is never the bottleneck, i.e. it makes at least 3x the
pairs that training consumes (tiny preset: about 2 steps/s at batch 4 on the
same 2 cores, so >= 24 pairs/s). Prints one JSON object with two figures:

* ``inline``: crop + degradation in this process with ``--threads`` torch threads;
* ``loader``: the training data path, a DataLoader with ``--workers`` worker
  processes (one torch thread each) running crop + degradation
  (:class:`gtasr.train.batches.StepBatches`, as the trainer does).

With ``--photos`` the crops come from real photos; otherwise from synthetic
textured images. On a shared machine the wall-clock figures are lower bounds:
the load average is printed, and so is the CPU time per batch of the inline
run (what an idle core would take).

    python bench/degradation.py [--photos DIR] [--batches 20] [--preset train]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from gtasr.data.datasets import HRCropDataset, worker_init_fn
from gtasr.degrade import DegradationConfig
from gtasr.train.batches import StepBatches, make_degrader


class SyntheticCrops:
    """Smooth random images with sharp edges and fine noise, in [-1, 1]."""

    def __init__(self, size: int, count: int = 64) -> None:
        self.size, self.count = size, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        _, seed = key
        gen = torch.Generator().manual_seed(seed)
        n = self.size
        coarse = torch.rand(1, 3, n // 16, n // 16, generator=gen)
        image = F.interpolate(coarse, size=(n, n), mode="bicubic", align_corners=False)
        edges = (torch.rand(1, 1, n // 4, n // 4, generator=gen) > 0.5).float()
        image = image + 0.2 * F.interpolate(edges, size=(n, n), mode="nearest")
        image = image + 0.02 * torch.randn(1, 3, n, n, generator=gen)
        return (image.clamp(0, 1) * 2 - 1)[0]


def step_batches(photos, args) -> StepBatches:
    """The trainer's micro-batches (crop + degradation) of a one-process run."""
    return StepBatches(
        photos=photos,
        batch_size=args.batch_size,
        seed=0,
        rank=0,
        world_size=1,
        degrader=make_degrader(args.preset),
    )


def inline_rate(photos, args) -> dict[str, float]:
    """Crop + degrade in this process; pairs/s (wall) and CPU seconds per batch."""
    torch.set_num_threads(args.threads)
    batches = step_batches(photos, args)
    for index in range(2):  # warm-up (FFT plans, codec)
        batches[index]
    start, cpu_start = time.perf_counter(), time.process_time()
    for index in range(2, 2 + args.batches):
        batches[index]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "pairs_per_s": round(args.batches * args.batch_size / seconds, 2),
        "cpu_seconds_per_batch": round(cpu / args.batches, 3),
        "pairs_per_cpu_second": round(args.batches * args.batch_size / cpu, 2),
    }


def loader_rate(photos, args) -> dict[str, float]:
    """The DataLoader path with worker processes; pairs/s after the first batches."""
    loader = DataLoader(
        step_batches(photos, args),
        batch_size=None,
        sampler=range(args.batches + 4),
        num_workers=args.workers,
        worker_init_fn=worker_init_fn,
        prefetch_factor=2,
    )
    batches = iter(loader)
    for _ in range(4):  # worker start-up and warm-up
        next(batches)
    start = time.perf_counter()
    count = sum(batch["y"].shape[0] for batch in batches)
    return {"pairs_per_s": round(count / (time.perf_counter() - start), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default=None, help="folder of HR photos (default: synthetic)")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="torch threads, inline run")
    parser.add_argument("--workers", type=int, default=2, help="loader worker processes")
    parser.add_argument("--preset", choices=("train", "test"), default="train")
    parser.add_argument("--step-rate", type=float, default=2.0, help="training steps/s")
    parser.add_argument("--step-batch", type=int, default=4, help="batch of those steps")
    args = parser.parse_args()

    config = DegradationConfig.preset(args.preset)
    if args.photos:
        photos = HRCropDataset([args.photos], crop_size=args.size)
    else:
        photos = SyntheticCrops(args.size)
    loader = loader_rate(photos, args)
    inline = inline_rate(photos, args)
    consumed = args.step_rate * args.step_batch
    best = max(loader["pairs_per_s"], inline["pairs_per_s"])
    report = {
        "benchmark": "degradation",
        "preset": args.preset,
        "source": "photos" if args.photos else "synthetic",
        "hr_size": args.size,
        "lr_size": args.size // config.scale,
        "batch_size": args.batch_size,
        "batches": args.batches,
        "inline": {"threads": args.threads, **inline},
        "loader": {"workers": args.workers, **loader},
        "training_pairs_per_s": consumed,
        "ratio_to_training": round(best / consumed, 2),
        "goal_ratio": 3.0,
        "meets_goal": best >= 3.0 * consumed,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
