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

from gtasr.errors import GtasrError, is_out_of_memory, one_line
from gtasr.options import EXIT_FATAL, EXIT_INTERRUPTED
from gtasr.version import __version__

COMMAND_MODULES = (
    "gtasr.infer.commands",
    "gtasr.model_commands",
    "gtasr.eval.commands",
    "gtasr.data.commands",
    "gtasr.perceptual.commands",
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
    """Entry point of the ``gtasr`` script; returns the process exit code.

    Whatever stops a command reaches the user as one line: its own errors, an operating
    system error (a read-only folder, a full disk), running out of memory, and Ctrl-C at
    any moment, start-up included (:data:`~gtasr.options.EXIT_INTERRUPTED`). Other
    exceptions are bugs and keep their traceback.
    """
    command = "gtasr"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = f"gtasr {args.command}" if getattr(args, "command", None) else "gtasr"
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        if args.verbose:  # gtasr's own details; libraries' debug output (PIL's chunks) stays off
            logging.getLogger("gtasr").setLevel(logging.DEBUG)
        if not hasattr(args, "func"):
            parser.print_help()
            return EXIT_FATAL
        return int(args.func(args) or 0)
    except GtasrError as error:
        return _fatal(command, str(error))
    except OSError as error:
        where = f"{error.filename}: " if error.filename is not None else ""
        return _fatal(command, f"{where}{error.strerror or error}")
    except (MemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        return _fatal(command, "out of memory")
    except KeyboardInterrupt:
        log.error("%s: interrupted", command)
        return EXIT_INTERRUPTED


def _fatal(command: str, message: str) -> int:
    """Log what stopped the command on one line; the fatal exit code."""
    log.error("%s: error: %s", command, one_line(message))
    return EXIT_FATAL


if __name__ == "__main__":
    sys.exit(main())
