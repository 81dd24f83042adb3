"""The ``gtasr`` command line: parse arguments, hand over to the modules.

Each area of the package contributes its subcommands through a module with a
``register(subparsers)`` function that adds parsers whose ``func`` default is
called with the parsed arguments and returns the exit code. The list below is
explicit on purpose: no scanning, no import-time registration. Every command
speaks the grammar of :mod:`gtasr.options` (``-o/--output``, ``--overwrite``,
``--device``, exit codes 0 / 1 / 2).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from gtasr import __version__
from gtasr.errors import GtasrError
from gtasr.options import EXIT_FATAL, report_deprecations

COMMAND_MODULES = (
    "gtasr.infer.commands",
    "gtasr.eval.commands",
    "gtasr.data.commands",
    "gtasr.train.commands",
    "gtasr.web.commands",
)

log = logging.getLogger("gtasr")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="gtasr", description="One-step real-world x4 super-resolution (GTASR)."
    )
    parser.add_argument("--version", action="version", version=f"gtasr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gtasr`` script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_FATAL
    report_deprecations(args, log)
    try:
        return int(args.func(args) or 0)
    except GtasrError as error:
        log.error("gtasr %s: error: %s", args.command, error)
        return EXIT_FATAL
    except KeyboardInterrupt:
        log.error("gtasr %s: interrupted", args.command)
        return 130


if __name__ == "__main__":
    sys.exit(main())
