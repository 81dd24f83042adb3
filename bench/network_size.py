"""Cost of candidate network sizes for CPU training and inference; prints one JSON object.

For each candidate (the tiny preset, wider or deeper variants of it, and tiny with a wider
x4 head: ``tiny-h32``, ``tiny-h48``), times the cpu_tiny Stage I step (L_CT + L_TA on one point,
``lr_anchor``, batch 8 of 64 px crops unless told otherwise) and the one-step inference
of a 128x128 LR tile on the fast path, both in alternation over ``--rounds`` rounds so
that a changing load affects every candidate alike, and reports medians, the ratio to
tiny, parameters and multiply-accumulates. A candidate is worth training only if its step
costs at most 3x tiny's and its inference at most 3x tiny's (the bundled model's budget).

    python bench/network_size.py --threads 1 --precision bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gtasr.infer.backends import TorchDenoiser
from gtasr.method.precond import ConsistencyModel
from gtasr.nets import build_network, count_macs, preset_config
from gtasr.train.config import config_from_dict
from gtasr.train.distributed import setup
from gtasr.train.trainer import Trainer
from train_step import _batches, _time_steps  # bench/ is on sys.path when run

TINY = preset_config("tiny")
CANDIDATES = {
    "tiny": {},
    "tiny-w48": {"base_channels": 48, "swin_dim": 48, "emb_channels": 192, "head_channels": 24},
    "tiny-b2": {"blocks_per_level": 2},
    "tiny-w48-b2": {
        "base_channels": 48,
        "swin_dim": 48,
        "emb_channels": 192,
        "head_channels": 24,
        "blocks_per_level": 2,
    },
    "tiny-h32": {"head_channels": 32},
    "tiny-h48": {"head_channels": 48},
    "tiny-w64-b2": {
        "base_channels": 64,
        "swin_dim": 64,
        "emb_channels": 256,
        "head_channels": 32,
        "blocks_per_level": 2,
    },
}
"""Changes to the tiny preset's config, by name."""


def network_of(name: str) -> dict:
    """The architecture dict of a candidate (the tiny preset with its changes)."""
    return {**TINY, **CANDIDATES[name], "lr_skip": False}


def _trainer(network: dict, photos: Path, run: Path, args: argparse.Namespace) -> Trainer:
    raw = {
        "stage": 1,
        "model": {"network": network, "lr_anchor": True},
        "data": {"hr_dirs": [str(photos)], "crop_size": args.crop, "degradation": "bicubic"},
        "loss": {"ta_weight": 0.5, "ta_points": "one"},
        "train": {
            "batch_size": args.batch,
            "iterations": 1_000_000,
            "device": "cpu",
            "precision": args.precision,
            "checkpoint_every": 1_000_000,
        },
        "log": {"progress": False, "tensorboard": False},
    }
    return Trainer(config_from_dict(raw), run, setup("cpu"))


def _infer_seconds(denoiser: TorchDenoiser, tile: int, repeats: int) -> float:
    y = torch.rand(1, 3, tile, tile) * 2 - 1
    x = torch.randn(1, 3, 4 * tile, 4 * tile)
    start = time.perf_counter()
    for _ in range(repeats):
        denoiser(x, 1.0, y)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tile", type=int, default=128, help="LR tile of the inference timing")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "photos").mkdir()
        pixels = np.random.default_rng(0).integers(0, 256, (args.crop, args.crop, 3), np.uint8)
        Image.fromarray(pixels).save(root / "photos" / "p.png")
        trainers = {
            name: _trainer(network_of(name), root / "photos", root / name, args)
            for name in args.candidates
        }
        denoisers = {
            name: TorchDenoiser(
                ConsistencyModel(build_network(network_of(name)), lr_anchor=True).eval(),
                torch.device("cpu"),
                args.precision,
            )
            for name in args.candidates
        }
        batches = _batches(args.steps, args.batch, args.crop)
        for name in args.candidates:  # warm-up
            _time_steps(trainers[name], batches[:1])
            _infer_seconds(denoisers[name], args.tile, 1)
        steps: dict[str, list[float]] = {name: [] for name in args.candidates}
        infers: dict[str, list[float]] = {name: [] for name in args.candidates}
        for _ in range(args.rounds):
            for name in args.candidates:
                steps[name].append(_time_steps(trainers[name], batches))
                infers[name].append(_infer_seconds(denoisers[name], args.tile, 2))
    base_step = statistics.median(steps[args.candidates[0]])
    base_infer = statistics.median(infers[args.candidates[0]])
    result = {
        "threads": args.threads,
        "precision": args.precision,
        "batch": args.batch,
        "crop": args.crop,
        "tile": args.tile,
        "candidates": {},
    }
    for name in args.candidates:
        net = build_network(network_of(name))
        step, infer = statistics.median(steps[name]), statistics.median(infers[name])
        result["candidates"][name] = {
            "changes": CANDIDATES[name],
            "parameters": sum(p.numel() for p in net.parameters()),
            "gmacs_128": count_macs(net, 128) / 1e9,
            "step_s": step,
            "step_ratio": step / base_step,
            "infer_s": infer,
            "infer_ratio": infer / base_infer,
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
