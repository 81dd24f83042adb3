"""Quality table: upscale a GT/LR test set with bicubic and each model, then score it.

Runs the real commands (``gtasr upscale`` and ``gtasr evaluate``) with one seed
for every model, and prints one JSON object per method plus a Markdown table::

    python bench/quality.py --model v3.1=src/gtasr/weights/gtasr-default.safetensors \\
        --data ../shared/data/imagenet-test-sample -o out/quality

``--data`` holds ``gt/`` and ``lq/``. With ``--no-reference DIR`` (LR photos
without ground truth, e.g. RealSet65) every method also upscales DIR and its
NIQE is added; with ``--data none`` only that is done. Seconds per image are
the upscaling wall time divided by the image count (model loading included),
on this machine.
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


def upscale(name: str, model: str | None, lq: Path, sr_dir: Path, seed: int) -> float:
    """Upscale the folder ``lq`` into ``sr_dir`` with one method; return the wall time."""
    command = ["upscale", str(lq), "-o", str(sr_dir), "--seed", str(seed), "--overwrite"]
    command += ["--model", model] if model else ["--method", "bicubic"]
    start = time.perf_counter()
    if gtasr(command) != 0:
        raise SystemExit(f"upscaling {lq} with {name} failed")
    return time.perf_counter() - start


def score(sr_dir: Path, gt: Path | None, metrics: str, report: Path) -> dict:
    """``gtasr evaluate`` of ``sr_dir`` (against ``gt`` when given); the JSON it wrote."""
    command = ["evaluate", "--sr", str(sr_dir), "--metrics", metrics, "-o", str(report)]
    command += ["--overwrite"]
    command += ["--gt", str(gt)] if gt is not None else []
    if gtasr(command) != 0:
        raise SystemExit(f"scoring {sr_dir} failed")
    return json.loads(report.read_text())


def run_method(
    name: str, model: str | None, data: Path | None, no_reference: Path | None, out: Path, seed: int
) -> dict:
    """Upscale and score one method on the paired set and/or the no-reference set."""
    row: dict = {"method": name, "model": model, "seed": seed}
    if data is not None:
        seconds = upscale(name, model, data / "lq", out / name, seed)
        scores = score(out / name, data / "gt", METRICS, out / f"{name}.json")
        count = len(scores["per_image"])
        row.update(images=count, seconds_per_image=seconds / max(count, 1), **scores["mean"])
    if no_reference is not None:
        sr_dir = out / f"{name}-no-reference"
        row["no_reference_seconds"] = upscale(name, model, no_reference, sr_dir, seed)
        scores = score(sr_dir, None, "niqe", out / f"{name}-no-reference.json")
        row["niqe"] = scores["mean"]["niqe"]
        row["niqe_images"] = sum(
            1 for v in scores["per_image"].values() if v.get("niqe") is not None
        )
    return row


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (the columns the rows have)."""
    columns = [(key, title) for key, title in (*COLUMNS, ("niqe", "NIQE")) if key in rows[0]]
    timed = "seconds_per_image" in rows[0]
    header = "| method | " + " | ".join(title for _, title in columns)
    header += " | s/image |" if timed else " |"
    lines = [header, "|" + "---|" * (len(columns) + 1 + timed)]
    for row in rows:
        cells = [f"{float(row[key]):.4f}" for key, _ in columns]
        timing = f" {row['seconds_per_image']:.2f} |" if timed else ""
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |" + timing)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument(
        "--data",
        default="../shared/data/imagenet-test-sample",
        help="folder with gt/ and lq/, or 'none'",
    )
    parser.add_argument("--no-reference", type=Path, help="LR photos without GT, scored by NIQE")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("out/quality"), help="folder for the results"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bicubic", action="store_true", help="only the --model methods")
    args = parser.parse_args()
    methods: list[tuple[str, str | None]] = [] if args.no_bicubic else [("bicubic", None)]
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--model {item!r}: expected NAME=PATH")
        methods.append((name, path))
    data = None if args.data == "none" else Path(args.data)
    if (data is None and args.no_reference is None) or not methods:
        raise SystemExit("nothing to do: no test set or no method")
    rows = [
        run_method(name, path, data, args.no_reference, args.output, args.seed)
        for name, path in methods
    ]
    for row in rows:
        print(json.dumps(row))
    print(markdown(rows))


if __name__ == "__main__":
    main()
