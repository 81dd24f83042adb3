"""The paper-size network from an authors'-format checkpoint on the CPU; prints JSON.

Writes a release checkpoint (``{"params_ema": ...}`` under the release's tensor
names) of the paper network with seeded random weights (speed does not depend
on training), then measures:

* how long ``gtasr.load_model`` takes to read it (settings from the tensors);
* one-step upscaling of a ``--lr`` x ``--lr`` image (default 128, giving
  512 x 512) with the release's conventions, in fp32 and in bf16 (weights
  cast once), interleaved (best of ``--repeats`` after one warm-up run each), and
  the PSNR of the bf16 output against fp32.

bf16 runs fast only on CPUs with native bf16 (AVX512-BF16, AMX); elsewhere
PyTorch emulates it. Usage::

    python bench/release.py [--lr 128] [--repeats 1] [-o FILE]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gtasr
from gtasr.infer.upscaler import Upscaler
from gtasr.nets.release_layout import release_state_dict
from upscale import best_times, emit, machine, psnr, random_model_file, test_image


def release_checkpoint(folder: Path) -> Path:
    """A paper-size checkpoint in the authors' format with seeded random weights."""
    backbone = gtasr.load_model(random_model_file("paper", folder)).backbone
    path = folder / "GTASR_random.pth"
    torch.save({"params_ema": release_state_dict(backbone)}, path)
    return path


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or what the platform module says)."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=int, default=128, help="LR side (128)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path, help="also write the JSON results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gtasr-bench-") as folder:
        checkpoint = release_checkpoint(Path(folder))
        start = time.perf_counter()
        gtasr.load_model(checkpoint)
        load_seconds = time.perf_counter() - start
        upscalers = {
            precision: Upscaler.from_pretrained(checkpoint, device="cpu", precision=precision)
            for precision in ("fp32", "bf16")
        }
    rgb = test_image(args.lr)
    outputs: dict[str, np.ndarray] = {}

    def run(precision: str) -> None:
        outputs[precision] = upscalers[precision].upscale_rgb(rgb, seed=0)

    seconds = best_times({p: (lambda p=p: run(p)) for p in upscalers}, args.repeats)
    result = {
        "benchmark": "release",
        "machine": {**machine(), "cpu_name": cpu_name()},
        "network": "paper (171,518,529 parameters), authors' checkpoint format, random weights",
        "load_model_s": round(load_seconds, 2),
        "lr": args.lr,
        "upscale_s": {p: round(s, 2) for p, s in seconds.items()},
        "bf16_psnr_vs_fp32_db": round(psnr(outputs["bf16"], outputs["fp32"]), 1),
    }
    emit(result, args.output)


if __name__ == "__main__":
    main()
