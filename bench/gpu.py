"""The paper network on a CUDA GPU: 128 x 128 LR -> 512 x 512 in bf16 and fp16; prints JSON.

Needs a CUDA device: without one it exits with status 2 and a one-line message,
having measured nothing. With the paper preset (seeded random weights, or
``--model`` for a trained file such as the authors' ``GTASR_final_phase.pth``)
it measures, per precision, with CUDA events (median and best of ``--repeats``
after ``--warmup`` calls):

* ``network_ms``: one evaluation of f(x, 1, y) by the fast path
  (:class:`gtasr.infer.backends.TorchDenoiser`: weights cast once, channels-last);
* ``upscale_ms``: ``Upscaler.upscale_tensor`` of the whole image (noise field,
  bicubic y0, one tile, the result back on the CPU);
* with ``--cuda-graphs`` (bf16 and fp16): the same evaluation replayed from a
  captured CUDA graph;
* with ``--compile MODE`` (bf16 and fp16): ``torch.compile`` of the prepared
  model in that mode (``default``, ``max-autotune``, ...): its compile time and
  ``network_ms``;
* ``psnr_vs_fp32_db`` against fp32 (TF32 off) on the same input and noise, and
  ``finite``: whether the output is free of NaN and Inf (the fp16 check).

The paper reports 0.08 s for 128 -> 512; the goal here is <= 10 ms per network
evaluation on a current datacenter GPU. ``bench/gpu.sh`` runs it with every option.

    python bench/gpu.py [--lr 128] [--cuda-graphs] [--compile default] [-o FILE]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gtasr.devices import resolve_device
from gtasr.infer.backends import TorchDenoiser
from gtasr.infer.upscaler import Upscaler
from upscale import emit, random_model_file

PRECISIONS = ("fp32", "bf16", "fp16")
GOAL_MS = 10.0


def check_outputs(outputs: dict[str, Tensor], reference: Tensor) -> dict[str, dict[str, object]]:
    """For each output (on [-1, 1]): whether it is finite, and its PSNR against ``reference``."""
    report: dict[str, dict[str, object]] = {}
    for name, out in outputs.items():
        finite = bool(torch.isfinite(out).all())
        entry: dict[str, object] = {"finite": finite}
        if finite:
            mse = float((out.double() - reference.double()).square().mean())
            entry["psnr_vs_fp32_db"] = round(10 * math.log10(4.0 / mse), 2) if mse else "inf"
        report[name] = entry
    return report


def cuda_times(fn: Callable[[], object], warmup: int, repeats: int) -> dict[str, float]:
    """Milliseconds of ``fn`` on the current CUDA stream: median and best of ``repeats``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return {"median_ms": round(statistics.median(times), 3), "best_ms": round(min(times), 3)}


def graph_call(model: torch.nn.Module, x: Tensor, y: Tensor) -> Callable[[], Tensor]:
    """A replay of ``model(x, 1, y)`` captured in a CUDA graph (static inputs)."""
    sigma = torch.ones(1, device=x.device)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.inference_mode():
        for _ in range(3):
            model(x, sigma, y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        out = model(x, sigma, y)

    def replay() -> Tensor:
        graph.replay()
        return out

    return replay


def measure(
    upscaler: Upscaler, x: Tensor, y: Tensor, args: argparse.Namespace
) -> tuple[dict[str, object], Tensor]:
    """Timings of one precision's network evaluation and whole upscale, and its output."""
    denoiser = upscaler.denoiser
    assert isinstance(denoiser, TorchDenoiser)
    result: dict[str, object] = {}
    out = denoiser(x, 1.0, y)
    result["network"] = cuda_times(lambda: denoiser(x, 1.0, y), args.warmup, args.repeats)
    result["upscale"] = cuda_times(
        lambda: upscaler.upscale_tensor(y, seed=0, tile=None), args.warmup, args.repeats
    )
    if denoiser.precision == "fp32":  # the reference: no speed-ups tried
        return result, out
    layout = denoiser.memory_format
    xs, ys = x.contiguous(memory_format=layout), y.contiguous(memory_format=layout)
    if args.cuda_graphs:
        result["cuda_graphs"] = _optional(
            lambda: cuda_times(graph_call(denoiser.model, xs, ys), args.warmup, args.repeats)
        )
    if args.compile:
        result["compile"] = _optional(lambda: _compiled(denoiser, xs, ys, args))
    return result, out


def _compiled(
    denoiser: TorchDenoiser, x: Tensor, y: Tensor, args: argparse.Namespace
) -> dict[str, object]:
    compiled = torch.compile(denoiser.model, mode=args.compile)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(x, 1.0, y)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start

    def call() -> Tensor:
        with torch.inference_mode():
            return compiled(x, 1.0, y)

    return {
        "mode": args.compile,
        "compile_s": round(seconds, 1),
        **cuda_times(call, 3, args.repeats),
    }


def _optional(fn: Callable[[], dict[str, object]]) -> dict[str, object]:
    """``fn()``, or what went wrong (so one run reports every part it could measure)."""
    try:
        return fn()
    except Exception as error:  # an optional speed-up that fails must not hide the rest
        return {"error": f"{type(error).__name__}: {error}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=int, default=128, help="LR side (128)")
    parser.add_argument("--model", type=Path, help="a model file (default: random paper weights)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cuda-graphs", action="store_true", help="also time a CUDA graph")
    parser.add_argument("--compile", metavar="MODE", help="also time torch.compile(mode=MODE)")
    parser.add_argument("-o", "--output", type=Path, help="also write the JSON results here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"bench/gpu.py: PyTorch {torch.__version__} sees no CUDA device", file=sys.stderr)
        sys.exit(2)
    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False  # fp32 is the accuracy reference
    torch.backends.cuda.matmul.allow_tf32 = False
    generator = torch.Generator().manual_seed(0)
    y = (torch.rand((1, 3, args.lr, args.lr), generator=generator) * 2 - 1).to(device)
    x = torch.randn((1, 3, 4 * args.lr, 4 * args.lr), generator=generator).to(device)
    results: dict[str, dict[str, object]] = {}
    outputs: dict[str, Tensor] = {}
    with tempfile.TemporaryDirectory(prefix="gtasr-bench-") as folder:
        model_file = args.model or random_model_file("paper", Path(folder))
        for precision in PRECISIONS:
            upscaler = Upscaler.from_pretrained(model_file, device=device, precision=precision)
            results[precision], outputs[precision] = measure(upscaler, x, y, args)
            del upscaler
            torch.cuda.empty_cache()
    reference = outputs.pop("fp32")
    for precision, checked in check_outputs(outputs, reference).items():
        results[precision].update(checked)
    best = min(float(results[p]["network"]["best_ms"]) for p in outputs)  # type: ignore[index]
    report = {
        "benchmark": "gpu",
        "gpu": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "model": str(args.model) if args.model else "paper preset, random weights",
        "lr": args.lr,
        **results,
        "goal_network_ms": GOAL_MS,
        "meets_goal": best <= GOAL_MS,
        "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated(device) / 1e9, 3),
    }
    emit(report, args.output)


if __name__ == "__main__":
    main()
