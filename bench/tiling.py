"""How far tiled upscaling departs from the untiled picture, per tile size; prints JSON.

The bundled model upscales each image once whole and once per tile size (LR pixels, with
the given overlap), and the PSNR of each tiled result against the whole one is reported,
with the number of tiles. Tile sizes under the seamless minimum
(:data:`gtasr.infer.tiling.MIN_TILE`) are measured as they were before that minimum
existed: the script switches the minimum off. Usage::

    python bench/tiling.py [--crop 256] [--tiles 64,128,160,192,224] [--overlap 16] \\
        [IMAGE ...]   # default: RealSet65's OST_009 and 0014 from ../shared/data, the sample
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gtasr.infer.upscaler
from gtasr.imageio import read_image
from gtasr.infer.upscaler import Upscaler
from upscale import emit, machine, psnr

REALSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "realset65"


def upscale(
    up: Upscaler, rgb: np.ndarray, tile: int | None, overlap: int
) -> tuple[np.ndarray, int]:
    """One-step upscale of ``rgb`` (seed 0) with exactly these tiles (None: the whole image
    at once); (result, tile count)."""
    count = [1]

    def on_tile(done: int, total: int) -> None:
        count[0] = total

    sr = up.upscale_rgb(rgb, seed=0, tile=tile, tile_overlap=overlap, on_tile=on_tile)
    return sr, count[0]


def exact_tiling(tile: int | None, overlap: int) -> tuple[int | None, int]:
    """Stands in for the minimum that ``Upscaler`` applies, to measure below it."""
    return tile, overlap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path)
    parser.add_argument("--crop", type=int, default=256, help="LR side of the crop (256)")
    parser.add_argument("--tiles", default="64,128,160,192,224")
    parser.add_argument("--overlap", type=int, default=16, help="LR pixels (16)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads (1: small tiles make many small calls, which threads slow down)",
    )
    parser.add_argument("-o", "--output", type=Path, help="also write the JSON results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = args.images or [
        REALSET / "OST_009.png",
        REALSET / "0014.jpg",
        Path(str(files("gtasr") / "assets" / "sample.png")),
    ]
    gtasr.infer.upscaler.seamless_tiling = exact_tiling
    up = Upscaler.from_pretrained(None, device="cpu")
    report: dict[str, object] = {"machine": machine(), "overlap": args.overlap, "images": []}
    start = time.perf_counter()
    for path in images:
        rgb = read_image(path).rgb[: args.crop, : args.crop]
        whole, _ = upscale(up, rgb, None, 0)
        rows = []
        for tile in map(int, args.tiles.split(",")):
            tiled, count = upscale(up, rgb, tile, args.overlap)
            rows.append(
                {"tile": tile, "tiles": count, "psnr_db": round(float(psnr(whole, tiled)), 2)}
            )
        size = f"{rgb.shape[1]}x{rgb.shape[0]}"
        report["images"].append({"image": path.name, "lr_size": size, "results": rows})
        print(f"{path.name}: {rows}", file=sys.stderr, flush=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    emit(report, args.output)


if __name__ == "__main__":
    main()
