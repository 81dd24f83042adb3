"""Quality table: upscale a GT/LR test set with bicubic and each model, then score it.

Runs the real commands (``gtasr upscale`` and ``gtasr evaluate``) with one seed
for every model, and prints one JSON object per method plus a Markdown table::

    python bench/quality.py --model GTASR-tiny=weights/gtasr-default.safetensors \\
        --data ../shared/data/imagenet-test-sample --out out/quality

``--data`` holds ``gt/`` and ``lq/``. Seconds per image are the upscaling wall
time divided by the image count (model loading included), on this machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gtasr.cli import main as gtasr

METRICS = "psnr,ssim,lpips,lpips-vgg,dists"
COLUMNS = (
    ("psnr", "PSNR-Y"),
    ("ssim", "SSIM-Y"),
    ("lpips", "LPIPS-alex"),
    ("lpips-vgg", "LPIPS-vgg"),
    ("dists", "DISTS"),
)


def run_method(name: str, model: str | None, data: Path, out: Path, seed: int) -> dict:
    """Upscale ``data/lq`` with one method, score it against ``data/gt``; return the means."""
    sr_dir = out / name
    upscale = ["upscale", str(data / "lq"), "-o", str(sr_dir), "--seed", str(seed), "--overwrite"]
    upscale += ["--model", model] if model else ["--method", "bicubic"]
    start = time.perf_counter()
    if gtasr(upscale) != 0:
        raise SystemExit(f"upscaling with {name} failed")
    seconds = time.perf_counter() - start
    report = out / f"{name}.json"
    evaluate = ["evaluate", "--sr", str(sr_dir), "--gt", str(data / "gt"), "--metrics", METRICS]
    if gtasr([*evaluate, "--json", str(report)]) != 0:
        raise SystemExit(f"scoring {name} failed")
    scores = json.loads(report.read_text())
    count = len(scores["per_image"])
    return {
        "method": name,
        "model": model,
        "images": count,
        "seed": seed,
        "seconds_per_image": seconds / max(count, 1),
        **scores["mean"],
    }


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    header = "| method | " + " | ".join(title for _, title in COLUMNS) + " | s/image |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    for row in rows:
        cells = [f"{float(row[key]):.4f}" for key, _ in COLUMNS]
        lines.append(
            f"| {row['method']} | " + " | ".join(cells) + f" | {row['seconds_per_image']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/imagenet-test-sample"))
    parser.add_argument("--out", type=Path, default=Path("out/quality"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    methods: list[tuple[str, str | None]] = [("bicubic", None)]
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--model {item!r}: expected NAME=PATH")
        methods.append((name, path))
    rows = [run_method(name, path, args.data, args.out, args.seed) for name, path in methods]
    for row in rows:
        print(json.dumps(row))
    print(markdown(rows))


if __name__ == "__main__":
    main()
