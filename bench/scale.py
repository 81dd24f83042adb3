"""``gtasr upscale`` against ``gtasr upscale --ray`` with 1 and 2 workers; prints JSON.

Every run is the real command in a child process on the same images (``--images``
random PNGs of ``--side`` pixels, the bundled model, seed 0). Measured per run:

* ``images_per_s_steady``: (images - 1) / (last output's mtime - first output's mtime),
  the rate once the workers run, which is what a long collection sees;
* ``images_per_s_wall``: images / the command's whole wall time, start-up included
  (a local Ray takes seconds to start; the plain command loads the model only);
* ``driver_peak_rss_gb``: the command's own peak resident memory (``os.wait4``; Ray's
  workers and services are other processes).

The plain command runs with one thread (``OMP_NUM_THREADS=1``), as each Ray worker
(``--ray-threads 1``). With ``--many N`` it also upscales N tiny images
(``--many-side``, ``--many-method``) with 2 workers and reports the driver's peak
memory. With ``--io-side S`` it times the per-image work around the network
on one core (the input for the on-paper estimate of docs/large-collections.md):
reading an S x S PNG and writing its 4S x 4S PNG result with gtasr's reader and
writer, and the result's size in bytes. ``--images 0`` skips the command runs. Usage::

    python bench/scale.py [--images 200] [--side 32] [--many 10000] [--io-side 128] [-o FILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL.Image

from release import cpu_name
from upscale import emit, machine


def make_images(folder: Path, count: int, side: int) -> Path:
    """``count`` seeded random RGB PNGs of ``side`` x ``side`` pixels in ``folder``."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (side, side, 3), np.uint8)
        PIL.Image.fromarray(pixels).save(folder / f"{index:05d}.png")
    return folder


def run(images: Path, out: Path, extra: list[str]) -> dict[str, object]:
    """One ``gtasr upscale`` child process: its rates, wall time and peak memory."""
    command = [sys.executable, "-m", "gtasr", "upscale", str(images), "-o", str(out), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    log = out.with_name(f"{out.name}.log")
    with log.open("wb") as errors:
        start = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(command)} failed:\n{tail}")
    times = sorted(path.stat().st_mtime for path in out.iterdir())
    count = len(times)
    return {
        "images": count,
        "images_per_s_steady": round((count - 1) / (times[-1] - times[0]), 2),
        "images_per_s_wall": round(count / seconds, 2),
        "seconds": round(seconds, 1),
        "driver_peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 3),  # KiB on Linux
    }


def io_cost(folder: Path, side: int, repeats: int = 20) -> dict[str, object]:
    """Best-of-``repeats`` seconds to read an S x S PNG and to write a 4S x 4S PNG."""
    import torch

    from gtasr.imageio import read_image
    from gtasr.infer.batch import UpscaleOptions, save_image, upscale_image

    torch.set_num_threads(1)
    source = make_images(folder / "io", 1, side) / "00000.png"
    image = read_image(source)
    big = upscale_image(image, UpscaleOptions(out_dir=folder, method="bicubic"), None)
    target = folder / "io-out.png"
    reads, writes = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        read_image(source)
        reads.append(time.perf_counter() - start)
        start = time.perf_counter()
        save_image(target, big)
        writes.append(time.perf_counter() - start)
    return {
        "side": side,
        "read_png_s": round(min(reads), 4),
        "write_4x_png_s": round(min(writes), 4),
        "output_bytes": target.stat().st_size,
    }


def ray_args(workers: int) -> list[str]:
    return ["--ray", "--ray-workers", str(workers), "--ray-threads", "1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--side", type=int, default=32, help="LR side in pixels (32)")
    parser.add_argument("--many", type=int, default=0, help="also N tiny images on 2 workers")
    parser.add_argument("--many-side", type=int, default=16)
    parser.add_argument("--many-method", default="model", help="model, bicubic or lanczos")
    parser.add_argument("--io-side", type=int, default=0, help="also time PNG read/write")
    parser.add_argument("-o", "--output", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    report: dict[str, object] = {"machine": {**machine(), "cpu_name": cpu_name()}}
    with tempfile.TemporaryDirectory(prefix="gtasr-scale-") as scratch:
        root = Path(scratch)
        if args.images:
            report |= compare_runs(root, args.images, args.side)
        if args.many:
            many = make_images(root / "many", args.many, args.many_side)
            method = ["--method", args.many_method]
            report["many"] = {
                "images": args.many,
                "side": args.many_side,
                "method": args.many_method,
                **run(many, root / "many-out", [*ray_args(2), *method]),
            }
        if args.io_side:
            report["io"] = io_cost(root, args.io_side)
    emit(report, args.output)


def compare_runs(root: Path, count: int, side: int) -> dict[str, object]:
    """The plain command and ``--ray`` with 1 and 2 workers on the same images."""
    images = make_images(root / "in", count, side)
    runs = {
        "plain_1_thread": run(images, root / "plain", []),
        "ray_1_worker": run(images, root / "ray1", ray_args(1)),
        "ray_2_workers": run(images, root / "ray2", ray_args(2)),
    }
    steady = {name: result["images_per_s_steady"] for name, result in runs.items()}
    return {
        "images": count,
        "side": side,
        "runs": runs,
        "ray_2_over_1_worker": round(steady["ray_2_workers"] / steady["ray_1_worker"], 2),
        "ray_1_worker_over_plain": round(steady["ray_1_worker"] / steady["plain_1_thread"], 2),
    }


if __name__ == "__main__":
    main()
