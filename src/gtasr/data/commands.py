"""Data subcommands: ``make-testset``, ``fetch-photos`` and ``fetch-weights`` (see gtasr.cli)."""

from __future__ import annotations

import argparse
import logging

from gtasr.options import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    add_output,
    add_overwrite,
    name_list,
    positive,
    seed,
)

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's subcommands to ``subparsers``."""
    testset = subparsers.add_parser(
        "make-testset",
        help="build a synthetic GT/LR test set from HR photos",
        description=(
            "Resize each photo's shorter side to --size, centre-crop it (the GT) and degrade it "
            "to --size/4 (the LR). Writes OUT/gt/*.png and OUT/lq/*.png; the same inputs and "
            "seed give byte-identical files. Exit code 0: every photo used; 1: some photos "
            "skipped (each named); 2: usage or fatal error."
        ),
    )
    testset.add_argument("--hr", nargs="+", required=True, metavar="DIR", help="HR photos")
    add_output(testset, "folder for gt/ and lq/", folder=True)
    add_overwrite(testset)
    testset.add_argument("--size", type=int, default=256, help="GT side in pixels (default 256)")
    testset.add_argument(
        "--count", type=positive, default=None, help="number of pairs (default all)"
    )
    testset.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    testset.add_argument(
        "--preset",
        default="test",
        help="degradation: 'test' = ResShift's ImageNet-Test recipe, 'train' = the release's "
        "training recipe, 'jpeg' = test then JPEG at quality 20-50, 'real' = test with a JPEG "
        "tail (gtasr's training recipe for real photos)",
    )
    testset.add_argument(
        "--max-pixels", type=int, default=None, help="refuse photos with more pixels than this"
    )
    testset.set_defaults(func=run_make_testset)

    photos = subparsers.add_parser(
        "fetch-photos",
        help="download the training photos from Debian wallpaper packages",
        description=(
            "Download the wallpaper packages (Debian bookworm, trixie and bullseye, from "
            "deb.debian.org with a private APT setup; nothing is installed) into a temporary "
            "folder, unpack them, check each listed photo's SHA-256 and copy the training photos "
            "to OUT and the held-out test photos to --test-out."
        ),
    )
    add_output(photos, "folder for the training photos", folder=True)
    photos.add_argument(
        "--test-out", default=None, metavar="DIR", help="held-out photos folder (default OUT-test)"
    )
    photos.add_argument(
        "--packages",
        type=name_list,
        default=None,
        metavar="NAME,...",
        help="only these packages' photos (default all; docs/data-and-licences.md lists them)",
    )
    add_overwrite(photos)
    photos.set_defaults(func=run_fetch_photos)


def run_make_testset(args: argparse.Namespace) -> int:
    from gtasr.data.testset import make_testset

    report = make_testset(
        args.hr,
        args.output,
        size=args.size,
        count=args.count,
        seed=args.seed,
        preset=args.preset,
        max_pixels=args.max_pixels,
        overwrite=args.overwrite,
    )
    log.info(
        "wrote %d GT/LR pairs to %s (%d photos skipped)",
        report.written,
        report.out,
        report.skipped,
    )
    return EXIT_SOME_FAILED if report.skipped else EXIT_OK


def run_fetch_photos(args: argparse.Namespace) -> int:
    from gtasr.data.photos import fetch_photos

    written = fetch_photos(
        args.output, test_out=args.test_out, overwrite=args.overwrite, packages=args.packages
    )
    for folder in sorted({path.parent for path in written}):
        count = sum(path.parent == folder for path in written)
        log.info("copied %d photos to %s", count, folder)
    return EXIT_OK
