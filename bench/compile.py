"""Does ``torch.compile`` pay back its compile time on a photo? Prints JSON.

For each preset (seeded random weights) and precision, the fast inference path
(:class:`gtasr.infer.backends.TorchDenoiser`, what ``gtasr upscale`` runs) is
timed on one ``--tile`` x ``--tile`` LR tile, eager and under ``torch.compile``
(inductor, static shapes: every tile of an image has the same size, see
:func:`gtasr.infer.tiling.plan_tiles`), the two called in turn round by round:

* ``compile_seconds``: the first compiled call less a steady compiled call
  (tracing, code generation and the C++ compiler);
* ``eager_seconds`` / ``compiled_seconds``: the fastest of ``--repeats`` calls;
* ``photo``: a ``--photo`` x ``--photo`` LR photo in those tiles: how many
  tiles, its eager seconds, its compiled seconds including the compile, and
  ``payback_photos``: how many such photos one process must upscale before
  the compile has paid for itself (``null`` when the compiled call is not faster);
* ``psnr_vs_eager_db``: compiled against eager output on the same input.

Usage::

    python bench/compile.py --presets tiny,paper --precisions fp32,bf16 --tile 128 [-o FILE]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gtasr
from gtasr.choices import DEFAULT_TILE_OVERLAP
from gtasr.infer.backends import TorchDenoiser
from gtasr.infer.tiling import plan_tiles, seamless_tiling
from inference import image, network_inputs
from release import cpu_name
from upscale import best_times, emit, machine, psnr, random_model_file

CPU = torch.device("cpu")


def photo_cost(
    tiles: int, eager: float, compiled: float, compile_seconds: float
) -> dict[str, object]:
    """What a photo of ``tiles`` tiles costs each way, and after how many photos compile pays."""
    saving = tiles * (eager - compiled)
    return {
        "tiles": tiles,
        "eager_seconds": round(tiles * eager, 2),
        "compiled_seconds_with_compile": round(compile_seconds + tiles * compiled, 2),
        "payback_photos": round(compile_seconds / saving, 1) if saving > 0 else None,
    }


def bench_case(model_file: Path, precision: str, args: argparse.Namespace) -> dict[str, object]:
    """Eager against compiled fast path for one model file and precision."""
    model = gtasr.load_model(model_file)
    eager = TorchDenoiser(copy.deepcopy(model), CPU, precision)
    compiled = TorchDenoiser(model, CPU, precision)
    compiled.model = torch.compile(compiled.model, dynamic=False)
    tile, overlap = seamless_tiling(args.tile, DEFAULT_TILE_OVERLAP)  # as the upscaler does
    x, y = network_inputs(tile)
    start = time.perf_counter()
    compiled(x, 1.0, y)
    first_call = time.perf_counter() - start
    outputs: dict[str, torch.Tensor] = {}
    seconds = best_times(
        {
            "eager": lambda: outputs.__setitem__("eager", eager(x, 1.0, y)),
            "compiled": lambda: outputs.__setitem__("compiled", compiled(x, 1.0, y)),
        },
        args.repeats,
    )
    compile_seconds = max(first_call - seconds["compiled"], 0.0)
    grid = plan_tiles(args.photo, args.photo, tile, overlap, eager.stride)
    return {
        "compile_seconds": round(compile_seconds, 1),
        "eager_seconds": round(seconds["eager"], 4),
        "compiled_seconds": round(seconds["compiled"], 4),
        "speedup": round(seconds["eager"] / seconds["compiled"], 3),
        "psnr_vs_eager_db": round(psnr(image(outputs["compiled"]), image(outputs["eager"])), 2),
        "photo": photo_cost(grid.count, seconds["eager"], seconds["compiled"], compile_seconds),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,paper", help="comma-separated")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated")
    parser.add_argument("--tile", type=int, default=128, help="LR tile side (128)")
    parser.add_argument("--photo", type=int, default=512, help="LR photo side (512)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("-o", "--output", type=Path, help="also write the JSON results here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict[str, object] = {
        "benchmark": "compile",
        "machine": {**machine(), "cpu_name": cpu_name()},
        "torch": torch.__version__,
        "tile": args.tile,
        "photo": args.photo,
    }
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="gtasr-bench-") as name:
        for preset in filter(None, args.presets.split(",")):
            model_file = random_model_file(preset, Path(name))
            results[preset] = {
                precision: bench_case(model_file, precision, args)
                for precision in filter(None, args.precisions.split(","))
            }
    report["presets"] = results
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    emit(report, args.output)


if __name__ == "__main__":
    main()
