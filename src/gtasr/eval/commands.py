"""Subcommands of the evaluation area: ``evaluate``, ``drift``, ``decoupling``, ``compare-grid``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gtasr.errors import GtasrError
from gtasr.fileio import refuse_existing, write_json
from gtasr.hub import MODEL_SPEC_HELP
from gtasr.options import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    add_device,
    add_output,
    add_overwrite,
    name_list,
    seed,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's subcommands to ``subparsers``."""
    _register_evaluate(subparsers)
    _register_drift(subparsers)
    _register_decoupling(subparsers)
    _register_compare_grid(subparsers)


def _register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score SR images (PSNR/SSIM-Y, LPIPS, DISTS, NIQE)",
        description=(
            "Score the images of --sr against --gt (matched by file stem). Without --gt only "
            "no-reference metrics (niqe) are available. Prints the means (and per image with "
            "--per-image); -o writes every value as JSON. Exit code 0: every pair scored; 1: "
            "some pairs failed (each named); 2: usage or fatal error."
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
    add_output(parser, "JSON file of per-image values and means", folder=False, required=False)
    add_overwrite(parser)
    parser.add_argument(
        "--time",
        action="store_true",
        help="report seconds per image of each metric (after decoding and model loading)",
    )
    add_device(parser)
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    """``gtasr evaluate``: exit 0 when every pair was scored, 1 when some failed."""
    from gtasr.devices import resolve_device
    from gtasr.eval.evaluate import (
        evaluate_pairs,
        format_table,
        match_pairs,
        parse_metrics,
        result_to_json,
    )

    if args.crop_border < 0:
        raise GtasrError(f"--crop-border must be >= 0, not {args.crop_border}")
    if args.output is not None:
        refuse_existing([args.output], args.overwrite)
    metrics = parse_metrics(args.metrics, have_gt=args.gt is not None)
    pairs = match_pairs(args.sr, args.gt)
    result = evaluate_pairs(
        pairs, metrics, crop_border=args.crop_border, device=resolve_device(args.device)
    )
    sys.stdout.write(format_table(result, per_image=args.per_image, timing=args.time) + "\n")
    if args.output is not None:
        document = result_to_json(
            result, sr_dir=args.sr, gt_dir=args.gt, crop_border=args.crop_border, timing=args.time
        )
        write_json(args.output, document)
    if result.errors:
        log.error(
            "%d problem(s) with %d images; see the messages above", len(result.errors), len(pairs)
        )
        return EXIT_SOME_FAILED
    return EXIT_OK


def _add_model_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by the drift and decoupling analyses."""
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="MODEL",
        help=f"repeat for several: {MODEL_SPEC_HELP}",
    )
    parser.add_argument("--gt", type=Path, help="folder of ground-truth images (optional)")
    parser.add_argument("--lq", type=Path, required=True, help="folder of LR images (same stems)")
    add_output(parser, "folder for the plot (PNG) and the values (JSON)", folder=True)
    add_overwrite(parser)
    parser.add_argument("--limit", type=int, help="use only the first N images (sorted by stem)")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the noise draws")
    add_device(parser)


def _models_and_pairs(args: argparse.Namespace) -> tuple[list, list, torch.device]:
    from gtasr.data.pairs import load_pairs
    from gtasr.devices import resolve_device
    from gtasr.eval.diagnostics import common_stride, load_models

    if args.limit is not None and args.limit < 1:
        raise GtasrError(f"--limit must be >= 1, not {args.limit}")
    device = resolve_device(args.device)
    models = load_models(args.model, device)
    pairs = load_pairs(args.gt, args.lq, stride=common_stride(models), limit=args.limit)
    return models, pairs, device


def _register_drift(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "drift",
        help="timestep drift (paper Fig. 2): x0 prediction error along the trajectory",
        description=(
            "For each test image, predict x0 from the ground-truth bridge state at every grid "
            "point eta_k = (k/K)**power, k = 1..K (the last is x_T = y0 + eps) and plot the "
            "error against eta for each model. Writes drift.png and drift.json to -o."
        ),
    )
    _add_model_data_arguments(parser)
    parser.add_argument("--grid-points", type=int, default=8, help="K, non-zero grid points")
    parser.add_argument("--power", type=float, default=1.0, help="grid exponent (default 1)")
    parser.add_argument("--draws", type=int, default=1, help="noise draws per image")
    parser.add_argument("--lpips", action="store_true", help="also measure LPIPS-alex")
    parser.set_defaults(func=run_drift)


def run_drift(args: argparse.Namespace) -> int:
    """``gtasr drift``."""
    from gtasr.eval.drift import DriftConfig, measure_drift, plot_drift

    if args.grid_points < 1 or args.draws < 1 or args.power <= 0:
        raise GtasrError("--grid-points and --draws must be >= 1 and --power > 0")
    config = DriftConfig(
        grid_points=args.grid_points,
        power=args.power,
        draws=args.draws,
        seed=args.seed,
        lpips=args.lpips,
    )
    return _measure_and_plot(args, "drift", measure_drift, plot_drift, config)


def _register_decoupling(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "decoupling",
        help="geometric decoupling (paper Fig. 4): positional error vs structural variance",
        description=(
            "Per image and model: positional error = mean |f(x_T) - x0| over K draws; structural "
            "variance = mean over pixels of the variance, over K draws x timesteps, of the Sobel "
            "magnitude of f's prediction from the ground-truth bridge state (docs/diagnostics.md). "
            "Writes decoupling.png and decoupling.json to -o."
        ),
    )
    _add_model_data_arguments(parser)
    parser.add_argument("--draws", type=int, default=4, help="K, noise draws per image")
    parser.add_argument(
        "--timesteps",
        default="0.3333333333333333,0.6666666666666666,1",
        help="comma-separated t in (0, 1] (default 1/3,2/3,1)",
    )
    parser.set_defaults(func=run_decoupling)


def run_decoupling(args: argparse.Namespace) -> int:
    """``gtasr decoupling``."""
    from gtasr.eval.decoupling import DecouplingConfig, measure_decoupling, plot_decoupling

    try:
        timesteps = tuple(float(t) for t in args.timesteps.split(","))
    except ValueError as error:
        raise GtasrError(f"--timesteps {args.timesteps!r}: expected numbers") from error
    if not all(0.0 < t <= 1.0 for t in timesteps) or args.draws < 1:
        raise GtasrError("--timesteps must lie in (0, 1] and --draws must be >= 1")
    if args.draws * len(timesteps) < 2:
        raise GtasrError("structural variance needs at least two predictions (--draws x steps)")
    config = DecouplingConfig(draws=args.draws, timesteps=timesteps, seed=args.seed)
    return _measure_and_plot(args, "decoupling", measure_decoupling, plot_decoupling, config)


def _measure_and_plot(
    args: argparse.Namespace,
    name: str,
    measure: Callable[..., dict],
    plot: Callable[[dict, Path], None],
    config: object,
) -> int:
    """Shared tail of ``drift`` and ``decoupling``: OUT/NAME.json and OUT/NAME.png from the
    models and pairs of ``args``, refused before any work when they exist."""
    files = (args.output / f"{name}.json", args.output / f"{name}.png")
    refuse_existing(files, args.overwrite)
    models, pairs, device = _models_and_pairs(args)
    document = measure(models, pairs, config, device)
    write_json(files[0], document)
    plot(document, files[1])
    log.info("wrote %s and %s", *files)
    return EXIT_OK


def _register_compare_grid(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare-grid",
        help="side-by-side crops: LR | bicubic | models ... | GT",
        description=(
            "For each image in --images, crop the same box (HR coordinates) from the LR "
            "(nearest x4), Pillow bicubic x4, every --sr folder and the GT, and draw them in one "
            "row with labels and PSNR-Y. Writes -o (PNG) and the PSNR values beside it (JSON). "
            "Without --gt (real photos), the grid has no GT column and no PSNR."
        ),
    )
    parser.add_argument("--lq", type=Path, required=True, help="folder of LR images")
    parser.add_argument("--gt", type=Path, help="folder of ground-truth images (optional)")
    parser.add_argument(
        "--sr", action="append", required=True, help="NAME=DIR of SR images (repeat)"
    )
    parser.add_argument("--images", type=name_list, required=True, help="comma-separated stems")
    parser.add_argument(
        "--box",
        action="append",
        required=True,
        help="x,y,w,h in HR pixels; once for all images or once per image",
    )
    add_output(parser, "the grid, a .png; its PSNR values go beside it as .json", folder=False)
    add_overwrite(parser)
    parser.set_defaults(func=run_compare_grid)


def run_compare_grid(args: argparse.Namespace) -> int:
    """``gtasr compare-grid``."""
    from gtasr.eval.compare_grid import Box, build_grid, grid_document, parse_named_dir, plot_grid

    stems: list[str] = args.images
    if not stems:
        raise GtasrError("--images names no image")
    if args.output.suffix.lower() != ".png":
        raise GtasrError(f"-o {args.output}: expected a .png file name")
    columns = [parse_named_dir(text) for text in args.sr]
    names = [name for name, _ in columns]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise GtasrError(f"--sr names the column {twice[0]!r} twice; give each its own name")
    files = (args.output, args.output.with_suffix(".json"))
    refuse_existing(files, args.overwrite)
    rows = build_grid(stems, [Box.parse(text) for text in args.box], args.lq, args.gt, columns)
    plot_grid(rows, files[0])
    write_json(files[1], grid_document(rows))
    log.info("wrote %s and %s", *files)
    return EXIT_OK
