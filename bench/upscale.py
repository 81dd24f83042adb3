"""Upscaling speed and memory on the CPU; prints JSON.

Measured, with seeded random weights (speed does not depend on training):

* latency per output megapixel of one-step sampling for the tiny and small
  presets (PyTorch, fp32);
* onnxruntime against PyTorch on the same input (goal: >= 1.2x faster);
* one-step against 4-step sampling of the same network;
* ``--precision bf16`` (weights cast once) against fp32 (goal: >= 1.7x faster
  on CPUs with AVX512-BF16), with the PSNR of the bf16 output against fp32 (goal >= 35 dB);
* the peak resident memory of ``gtasr upscale`` on a 1024 x 1024 LR image
  (4096 x 4096 out) with ``--tile 256`` on the tiny preset (goal <= 1.5 GB),
  measured on a child process with ``os.wait4``.

Timings are the best of ``--repeats`` interleaved runs after one warm-up run. Usage::

    python bench/upscale.py [--lr 128] [--repeats 3] [--rss-lr 1024] [-o FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from gtasr.imageio import read_image
from gtasr.infer.upscaler import Upscaler
from gtasr.method.precond import ConsistencyModel
from gtasr.modelfile import save_model
from gtasr.nets import build_network

PERTURBATION = 0.03
"""Noise added to the initial weights so the random network's output is not flat."""


def random_model_file(preset: str, folder: Path, seed: int = 0) -> Path:
    """Save a seeded random model of ``preset`` and return its path."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        backbone = build_network(preset)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in backbone.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * PERTURBATION)
    model = ConsistencyModel(backbone)
    path = folder / f"{preset}.safetensors"
    save_model(
        path,
        backbone.state_dict(),
        network=backbone.config,
        precond=model.precond_config(),
        stage=1,
        iteration=0,
        weights="raw",
    )
    return path


def best_times(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Seconds of the fastest of ``repeats`` calls of each run, after one warm-up call each.

    The runs are interleaved round by round (in rotating order), so a change in
    the machine's load hits every variant alike instead of one of them.
    """
    names = list(runs)
    for name in names:
        runs[name]()
    best = dict.fromkeys(names, float("inf"))
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runs[name]()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two [0, 1] images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def test_image(side: int) -> np.ndarray:
    """A ``side`` x ``side`` crop of the bundled sample photo (float RGB)."""
    rgb = read_image(files("gtasr") / "assets" / "sample.png").rgb
    return np.ascontiguousarray(rgb[:side, :side]) if side <= 128 else _resized(rgb, side)


def _resized(rgb: np.ndarray, side: int) -> np.ndarray:
    pil = PIL.Image.fromarray((rgb * 255).round().astype(np.uint8))
    big = pil.resize((side, side), PIL.Image.Resampling.LANCZOS)
    return np.asarray(big, dtype=np.float32) / 255.0


def bench_preset(preset: str, model: Path, rgb: np.ndarray, repeats: int) -> dict[str, object]:
    """All latency comparisons for one preset, measured interleaved."""
    megapixels = rgb.shape[0] * rgb.shape[1] * 16 / 1e6
    ups = {
        "fp32": Upscaler.from_pretrained(model, device="cpu"),
        "bf16": Upscaler.from_pretrained(model, device="cpu", precision="bf16"),
        "onnx": Upscaler.from_pretrained(model, device="cpu", backend="onnx"),
    }
    runs: dict[str, Callable[[], object]] = {
        name: (lambda up=up: up.upscale_rgb(rgb, seed=0)) for name, up in ups.items()
    }
    runs["four_step"] = lambda: ups["fp32"].upscale_rgb(rgb, seed=0, steps=4)
    seconds = best_times(runs, repeats)
    reference = ups["fp32"].upscale_rgb(rgb, seed=0)
    fp32_s = seconds["fp32"]
    return {
        "lr_size": list(rgb.shape[:2]),
        "output_megapixels": round(megapixels, 4),
        "torch_fp32_s": round(fp32_s, 3),
        "torch_fp32_s_per_mp": round(fp32_s / megapixels, 3),
        "four_step_s": round(seconds["four_step"], 3),
        "four_step_over_one_step": round(seconds["four_step"] / fp32_s, 2),
        "bf16_s": round(seconds["bf16"], 3),
        "bf16_speedup": round(fp32_s / seconds["bf16"], 2),
        "bf16_psnr_vs_fp32_db": round(psnr(ups["bf16"].upscale_rgb(rgb, seed=0), reference), 2),
        "onnxruntime_s": round(seconds["onnx"], 3),
        "onnxruntime_speedup": round(fp32_s / seconds["onnx"], 2),
        "onnxruntime_max_abs_diff": float(
            np.abs(ups["onnx"].upscale_rgb(rgb, seed=0) - reference).max()
        ),
    }


def peak_rss(model: Path, side: int, tile: int, precision: str, folder: Path) -> dict[str, object]:
    """Peak RSS of ``gtasr upscale`` on a ``side``-pixel square image in a child process."""
    source = folder / "rss_input.png"
    PIL.Image.fromarray((test_image(side) * 255).round().astype(np.uint8)).save(source)
    command = [
        sys.executable,
        "-m",
        "gtasr",
        "upscale",
        str(source),
        "-o",
        str(folder / "rss_out"),
        "--model",
        str(model),
        "--tile",
        str(tile),
        "--device",
        "cpu",
        "--precision",
        precision,
        "--overwrite",
    ]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    errors = child.stderr.read().decode() if child.stderr else ""
    if child.returncode != 0:
        raise RuntimeError(f"gtasr upscale failed: {errors}")
    written = PIL.Image.open(folder / "rss_out" / "rss_input.png").size
    return {
        "lr_size": [side, side],
        "output_size": list(written),
        "tile": tile,
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 3),  # ru_maxrss is in KiB on Linux
        "seconds": round(seconds, 1),
    }


def machine() -> dict[str, object]:
    flags = ""
    if Path("/proc/cpuinfo").is_file():
        flags = Path("/proc/cpuinfo").read_text()
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "avx512_bf16": "avx512_bf16" in flags,
        "torch": torch.__version__,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def emit(report: dict[str, object], output: Path | None) -> None:
    """Print the JSON report, and write it to ``output`` when given (the benches' ``-o``)."""
    text = json.dumps(report, indent=2)
    print(text)
    if output:
        output.write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=int, default=128, help="LR side for latency (128)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--rss-lr", type=int, default=1024, help="LR side, 0 to skip (1024)")
    parser.add_argument("--rss-tile", type=int, default=256)
    parser.add_argument("-o", "--output", type=Path, help="also write the JSON results here")
    args = parser.parse_args()
    report: dict[str, object] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="gtasr-bench-") as name:
        folder = Path(name)
        models = {p: random_model_file(p, folder) for p in args.presets.split(",")}
        if args.rss_lr and "tiny" in models:
            report["peak_rss_tiny"] = peak_rss(
                models["tiny"], args.rss_lr, args.rss_tile, "fp32", folder
            )
        rgb = test_image(args.lr)
        report["presets"] = {p: bench_preset(p, m, rgb, args.repeats) for p, m in models.items()}
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    emit(report, args.output)


if __name__ == "__main__":
    main()
