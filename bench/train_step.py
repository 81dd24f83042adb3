"""Seconds per training iteration of the tiny preset; prints one JSON object.

Times ``Trainer.train_step`` (objective, backward, AdamW, EMA) for Stage I
with CT only, Stage I with CT + TA (N = 4, the first half of training: three
interior points through LPIPS as one batch), and Stage II, at batch 4 with
128x128 HR crops unless ``--batch``/``--crop`` say otherwise, d = 0.5 LPIPS-VGG
+ 0.5 Charbonnier as in the paper. The
batches are prepared beforehand (bicubic degradation) so only the step is
timed; ``degrade_s`` is the separate cost of the release's training
degradation for one such batch (what the step would pay if it degraded on the
device instead of in a loader worker). The variants are timed in alternation
(``--rounds`` rounds of ``--steps`` steps each) and the median per variant is
reported, so a changing load on a shared machine affects all of them alike.
Peak RSS is the process's maximum resident set size.

    python bench/train_step.py --threads 2 --precision fp32
    python bench/train_step.py --threads 2 --precision bf16
    python bench/train_step.py --precision bf16 --batch 8 --crop 64
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gtasr.degrade import DegradationConfig, degrade_batch
from gtasr.train.batches import bicubic_degrade
from gtasr.train.config import config_from_dict
from gtasr.train.distributed import setup
from gtasr.train.trainer import Trainer


def _config(
    stage: int,
    ta_weight: float,
    photos: Path,
    precision: str,
    init: Path | None,
    batch: int,
    crop: int,
    ta_points: str = "all",
):
    raw = {
        "stage": stage,
        "init_from": str(init) if init else None,
        "model": {"preset": "tiny"},
        "data": {"hr_dirs": [str(photos)], "crop_size": crop, "degradation": "bicubic"},
        "loss": {"ta_weight": ta_weight, "ta_points": ta_points},
        "train": {
            "batch_size": batch,
            "iterations": 1_000_000,
            "device": "cpu",
            "precision": precision,
            "checkpoint_every": 1_000_000,
        },
        "log": {"progress": False, "tensorboard": False},
    }
    if stage == 2:
        raw["schedule"] = {"power": 1.0, "num_intervals": [3]}
    return config_from_dict(raw)


def _batches(count: int, batch: int, crop: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        x0 = torch.rand(batch, 3, crop, crop, generator=gen) * 2 - 1
        x0 = torch.nn.functional.avg_pool2d(x0, 5, stride=1, padding=2)  # some structure
        y, y0 = bicubic_degrade(x0, gen)
        out.append({"x0": x0, "y": y, "y0": y0})
    return out


def _time_steps(trainer: Trainer, batches: list[dict[str, torch.Tensor]]) -> float:
    """Mean seconds per iteration over ``batches``."""
    start = time.perf_counter()
    for batch in batches:
        trainer.train_step(iter([batch]))
    return (time.perf_counter() - start) / len(batches)


def _degrade_seconds(batch: int, crop: int, repeats: int = 3) -> float:
    config = DegradationConfig.preset("train")
    hr = torch.rand(batch, 3, crop, crop) * 2 - 1
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        degrade_batch(hr, config, torch.Generator().manual_seed(seed))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128, help="HR crop side (multiple of 16)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env = setup("cpu")
    precision = args.precision
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "photos").mkdir()
        size = (args.crop, args.crop, 3)
        pixels = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8)
        Image.fromarray(pixels).save(root / "photos" / "p.png")
        stage1 = Trainer(
            _config(1, 0.5, root / "photos", precision, None, args.batch, args.crop),
            root / "s1",
            env,
        )
        stage1.save_checkpoint()
        trainers = {
            "stage1_ct_only": Trainer(
                _config(1, 0.0, root / "photos", precision, None, args.batch, args.crop),
                root / "ct",
                env,
            ),
            "stage1_ct_ta": stage1,
            "stage1_ct_ta_one": Trainer(
                _config(1, 0.5, root / "photos", precision, None, args.batch, args.crop, "one"),
                root / "one",
                env,
            ),
            "stage2": Trainer(
                _config(2, 0.5, root / "photos", precision, root / "s1", args.batch, args.crop),
                root / "s2",
                env,
            ),
        }
        batches = _batches(args.steps, args.batch, args.crop)
        for trainer in trainers.values():
            _time_steps(trainer, batches[:1])  # warm-up
        samples: dict[str, list[float]] = {name: [] for name in trainers}
        for _ in range(args.rounds):
            for name, trainer in trainers.items():
                samples[name].append(_time_steps(trainer, batches))
    result = {
        "preset": "tiny",
        "batch": args.batch,
        "crop": args.crop,
        "threads": args.threads,
        "precision": args.precision,
        "stage1_intervals": 4,
        **{f"{name}_s_per_it": statistics.median(v) for name, v in samples.items()},
        "degrade_s_per_batch": _degrade_seconds(args.batch, args.crop),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    ct_only = result["stage1_ct_only_s_per_it"]
    result["ta_over_ct_only"] = result["stage1_ct_ta_s_per_it"] / ct_only
    result["ta_one_over_ct_only"] = result["stage1_ct_ta_one_s_per_it"] / ct_only
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
