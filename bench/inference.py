"""Inference speed of the plain and the fast path, interleaved in one run; prints JSON.

For each preset (seeded random weights: speed does not depend on training), one
network evaluation f(x, 1, y) of a ``--lr`` x ``--lr`` LR image (4x that out)
along these paths, called in turn round by round (best of ``--repeats`` after
one warm-up call each), so that a changing load on a shared machine hits every
path alike:

* ``eager_fp32``: the model as ``gtasr.load_model`` returns it (float32,
  contiguous tensors) under inference mode: the plain path;
* ``autocast_bf16``: the same under ``torch.autocast(bf16)``, which casts the
  weights on every call: plain bf16;
* ``fast_fp32`` and ``fast_bf16``: :class:`gtasr.infer.backends.TorchDenoiser`,
  what ``gtasr upscale`` and the Python API run (channels-last; bf16 weights
  cast once);
* ``openvino_fp32`` and ``openvino_bf16``: :class:`gtasr.infer.backends.OpenVinoDenoiser`
  on the model's ONNX export (OpenVINO's CPU plugin, inference precision hint f32 or
  bf16), what ``--backend auto`` runs on the CPU where OpenVINO is installed;
* ``onnxruntime_fp32``: :class:`gtasr.infer.backends.OnnxDenoiser` on the same export;
* ``probe_bf16`` and ``probe_fp32``: a 3x3 convolution of 192 channels at
  64 x 64, channels-last (the paper network's commonest layer), called
  ``--probe-calls`` times per round: what this machine's convolutions reach.

Every path reports its achieved TFLOP/s (2 x multiply-accumulates / seconds),
that as a fraction of the bf16 probe's and of the probe of its own dtype, its
speed-up over ``eager_fp32``, ``autocast_bf16`` and the fast path of its dtype, and the
PSNR of its output against ``eager_fp32`` on the same input and noise. ``auto`` names
the backend ``--backend auto`` picks here.

``--rss PRESET:LR:TILE[:PRECISION]`` (repeatable) measures the time and peak resident
memory of ``gtasr upscale`` (default backend) on a LR x LR image in tiles of TILE pixels
in a child process; PRESET ``release`` is the paper network in an authors'-format
checkpoint (random weights), run twice: a first run on a small image exports it to ONNX
for OpenVINO (``first_seconds``, ``first_peak_rss_gb``), the measured one starts from
gtasr's cache.
Where one preset was measured at two sizes and another only at the smaller one, the
JSON also estimates the other at the larger size: the network's memory depends on the
tile, not on the image, and the canvas and image buffers depend on the image, not on
the network.

bf16 is fast only on CPUs with native bf16 (AVX512-BF16, AMX); elsewhere PyTorch
emulates it, many times slower than fp32, and ``--paths`` can leave it out.
On a busy machine run with ``OMP_WAIT_POLICY=PASSIVE``. Usage::

    python bench/inference.py --presets tiny,small,paper --lr 64 [-o FILE]
    python bench/inference.py --presets tiny --lr 256 --paths eager_fp32,fast_fp32
    python bench/inference.py --presets tiny --rss tiny:1024:256 --rss tiny:384:256
    python bench/inference.py --presets paper --lr 64 --rss release:1024:256:bf16
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gtasr
from gtasr.infer.backends import OnnxDenoiser, OpenVinoDenoiser, TorchDenoiser, choose_backend
from gtasr.infer.onnx_export import export_onnx
from gtasr.nets import build_network, count_macs
from release import cpu_name, release_checkpoint
from upscale import best_times, emit, machine, peak_rss, psnr, random_model_file

PATHS = (
    "eager_fp32",
    "autocast_bf16",
    "fast_fp32",
    "fast_bf16",
    "openvino_fp32",
    "openvino_bf16",
    "onnxruntime_fp32",
)
PROBE_CHANNELS = 192
PROBE_SIDE = 64
PROBE_DTYPES = (("bf16", torch.bfloat16), ("fp32", torch.float32))
CPU = torch.device("cpu")
EXPORT_RUN_SIDE = 32
"""LR side of the run that fills the export cache before a ``release`` measurement."""


def network_inputs(lr: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A seeded noisy HR state x (Tensor[1, 3, 4lr, 4lr]) and LR image y in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.rand((1, 3, lr, lr), generator=generator) * 2 - 1
    return torch.randn((1, 3, 4 * lr, 4 * lr), generator=generator), y


def path_calls(
    model: nn.Module, paths: list[str], x: Tensor, y: Tensor, exported: Path | None
) -> dict[str, Callable]:
    """One call per path, each returning f(x, 1, y) as a float32 tensor (the ONNX paths
    run ``exported``)."""
    calls: dict[str, Callable[[], Tensor]] = {}
    for path in paths:
        runtime, precision = path.rsplit("_", 1)
        if runtime in ("fast", "openvino", "onnxruntime"):
            if runtime == "fast":
                denoiser = TorchDenoiser(copy.deepcopy(model), CPU, precision)
            elif runtime == "openvino":
                denoiser = OpenVinoDenoiser(exported, precision)
            else:
                denoiser = OnnxDenoiser(exported, CPU)
            calls[path] = lambda d=denoiser: d(x, 1.0, y)
            continue
        bf16 = path == "autocast_bf16"

        def plain(bf16: bool = bf16) -> Tensor:
            autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else None
            with torch.inference_mode(), autocast or contextlib.nullcontext():
                return model(x, 1.0, y).float()

        calls[path] = plain
    return calls


def probe(dtype: torch.dtype, calls: int) -> tuple[Callable[[], None], int]:
    """A channels-last 3x3 convolution run ``calls`` times, and its FLOPs."""
    conv = nn.Conv2d(PROBE_CHANNELS, PROBE_CHANNELS, 3, padding=1).eval()
    conv = conv.to(dtype=dtype, memory_format=torch.channels_last)
    inp = torch.randn(1, PROBE_CHANNELS, PROBE_SIDE, PROBE_SIDE, dtype=dtype)
    inp = inp.contiguous(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode():
            for _ in range(calls):
                conv(inp)

    flops = 2 * PROBE_SIDE * PROBE_SIDE * 9 * PROBE_CHANNELS * PROBE_CHANNELS * calls
    return run, flops


def image(output: Tensor) -> np.ndarray:
    """A network output on [-1, 1] as an image on [0, 1] (for PSNR)."""
    return ((output.float().clamp(-1, 1) + 1) / 2).numpy()


def bench_preset(preset: str, model_file: Path, args: argparse.Namespace) -> dict[str, object]:
    """Every path of one preset and both probes, interleaved."""
    model = gtasr.load_model(model_file)
    with torch.device("meta"):
        macs = count_macs(build_network(model.backbone.config), args.lr)
    x, y = network_inputs(args.lr)
    exported = None
    if any(not path.startswith(("eager", "autocast", "fast")) for path in args.paths):
        exported = export_onnx(model_file, model_file.with_suffix(".onnx"))
    calls = path_calls(model, args.paths, x, y, exported)
    outputs: dict[str, Tensor] = {}
    runs: dict[str, Callable[[], object]] = {
        path: (lambda path=path, call=call: outputs.__setitem__(path, call()))
        for path, call in calls.items()
    }
    probes = {f"probe_{name}": probe(dtype, args.probe_calls) for name, dtype in PROBE_DTYPES}
    runs.update({name: run for name, (run, _) in probes.items()})
    seconds = best_times(runs, args.repeats)
    probe_tflops = {k: flops / seconds[k] / 1e12 for k, (_, flops) in probes.items()}
    result: dict[str, object] = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "lr": args.lr,
        "gmac": round(macs / 1e9, 3),
        "probe_tflops": {k.removeprefix("probe_"): round(v, 4) for k, v in probe_tflops.items()},
        "auto": choose_backend("auto", CPU, model_file),
    }
    reference = image(outputs["eager_fp32"]) if "eager_fp32" in outputs else None
    for path in calls:
        tflops = 2 * macs / seconds[path] / 1e12
        entry: dict[str, object] = {
            "seconds": round(seconds[path], 4),
            "tflops": round(tflops, 4),
            "fraction_of_bf16_probe": round(tflops / probe_tflops["probe_bf16"], 3),
            "fraction_of_own_dtype_probe": round(tflops / probe_tflops[f"probe_{path[-4:]}"], 3),
        }
        for base in ("eager_fp32", "autocast_bf16", f"fast_{path[-4:]}"):
            if base in seconds and base != path:
                entry[f"speedup_vs_{base}"] = round(seconds[base] / seconds[path], 3)
        if reference is not None and path != "eager_fp32":
            entry["psnr_vs_eager_fp32_db"] = round(psnr(image(outputs[path]), reference), 2)
        result[path] = entry
    return result


def rss_runs(specs: list[str], folder: Path, models: dict[str, Path]) -> dict[str, object]:
    """Peak RSS of ``gtasr upscale`` for each PRESET:LR:TILE[:PRECISION], plus estimates."""
    measured: dict[tuple[str, int, int, str], dict[str, object]] = {}
    for spec in specs:
        preset, lr, tile, *rest = spec.split(":")
        if preset not in models:
            make = release_checkpoint if preset == "release" else partial(random_model_file, preset)
            models[preset] = make(folder)
        key = (preset, int(lr), int(tile), rest[0] if rest else "fp32")
        run = {"precision": key[3]}
        if preset == "release":  # a first, small run exports the network to ONNX for OpenVINO
            first = peak_rss(models[preset], EXPORT_RUN_SIDE, *key[2:], folder)
            run.update(first_seconds=first["seconds"], first_peak_rss_gb=first["peak_rss_gb"])
        measured[key] = {**run, **peak_rss(models[preset], *key[1:], folder)}
    report: dict[str, object] = {":".join(map(str, key)): run for key, run in measured.items()}
    estimates = {}
    for (preset, lr, tile, precision), run in measured.items():
        for (ref, big_lr, ref_tile, ref_precision), big_run in measured.items():
            small_run = measured.get((ref, lr, tile, ref_precision))
            target = (preset, big_lr, tile, precision)
            if ref == preset or ref_tile != tile or big_lr <= lr or small_run is None:
                continue
            if target in measured:
                continue
            growth = float(big_run["peak_rss_gb"]) - float(small_run["peak_rss_gb"])
            estimates[":".join(map(str, target))] = {
                "peak_rss_gb": round(float(run["peak_rss_gb"]) + growth, 3),
                "from": f"{preset} at LR {lr} + ({ref} at LR {big_lr} - {ref} at LR {lr})",
            }
    if estimates:
        report["estimates"] = estimates
    return report


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small,paper", help="comma-separated")
    parser.add_argument("--lr", type=int, default=64, help="LR side (64)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset")
    parser.add_argument("--probe-calls", type=int, default=10, help="probe calls per round")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--rss", action="append", default=[], metavar="PRESET:LR:TILE[:PRECISION]")
    parser.add_argument("-o", "--output", type=Path, help="also write the JSON results here")
    args = parser.parse_args()
    args.paths = args.paths.split(",")
    unknown = sorted(set(args.paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown paths {unknown} (choose from {', '.join(PATHS)})")
    return args


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict[str, object] = {
        "benchmark": "inference",
        "machine": {**machine(), "cpu_name": cpu_name()},
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }
    with tempfile.TemporaryDirectory(prefix="gtasr-bench-") as name:
        folder = Path(name)
        os.environ["GTASR_CACHE"] = str(folder / "cache")  # exports start empty, then cached
        presets = [p for p in args.presets.split(",") if p]
        models = {p: random_model_file(p, folder) for p in presets}
        if args.rss:  # first: a child's peak RSS counts what this process held when it started it
            report["peak_rss"] = rss_runs(args.rss, folder, models)
        report["presets"] = {p: bench_preset(p, models[p], args) for p in presets}
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    emit(report, args.output)


if __name__ == "__main__":
    main()
