"""Subcommands of the evaluation area: ``evaluate``, ``drift``, ``decoupling``, ``compare-grid``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from gtasr.errors import GtasrError
from gtasr.fileio import atomic_write_bytes

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's subcommands to ``subparsers``."""
    _register_evaluate(subparsers)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise GtasrError(f"unknown device {name!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GtasrError(f"device {name!r} requested but CUDA is not available")
    return device


def write_json(path: Path, document: dict) -> None:
    """Write a JSON document atomically (UTF-8, indented, strict: no NaN literals)."""
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def _register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score SR images (PSNR/SSIM-Y, LPIPS, DISTS, NIQE)",
        description=(
            "Score the images of --sr against --gt (matched by file stem). Without --gt only "
            "no-reference metrics (niqe) are available. Prints the means (and per image with "
            "--per-image); --json writes every value."
        ),
    )
    parser.add_argument("--sr", type=Path, required=True, help="folder of SR images")
    parser.add_argument("--gt", type=Path, help="folder of ground-truth images")
    parser.add_argument(
        "--metrics",
        help="comma-separated: psnr,ssim,lpips,lpips-vgg,dists,niqe "
        "(default: psnr,ssim,lpips with --gt, niqe without)",
    )
    parser.add_argument(
        "--crop-border", type=int, default=0, help="pixels ignored at each edge (PSNR/SSIM/NIQE)"
    )
    parser.add_argument("--per-image", action="store_true", help="print one row per image")
    parser.add_argument("--json", type=Path, help="write per-image values and means here")
    parser.add_argument(
        "--time",
        action="store_true",
        help="report seconds per image of each metric (after decoding and model loading)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """``gtasr evaluate``: exit 0 when every pair was scored, 2 when some failed."""
    from gtasr.eval.evaluate import (
        evaluate_pairs,
        format_table,
        match_pairs,
        parse_metrics,
        result_to_json,
    )

    if args.crop_border < 0:
        raise GtasrError(f"--crop-border must be >= 0, not {args.crop_border}")
    metrics = parse_metrics(args.metrics, have_gt=args.gt is not None)
    pairs = match_pairs(args.sr, args.gt)
    result = evaluate_pairs(
        pairs, metrics, crop_border=args.crop_border, device=resolve_device(args.device)
    )
    sys.stdout.write(format_table(result, per_image=args.per_image, timing=args.time) + "\n")
    if args.json is not None:
        document = result_to_json(
            result, sr_dir=args.sr, gt_dir=args.gt, crop_border=args.crop_border, timing=args.time
        )
        write_json(args.json, document)
    if result.errors:
        log.error("%d of %d images could not be scored", len(result.errors), len(pairs))
        return 2
    return 0
