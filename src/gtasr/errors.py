"""Errors that reach the user as one line, never as a traceback."""

from __future__ import annotations

import sys


class GtasrError(Exception):
    """A problem the user can fix (bad path, bad config, missing weights).

    The command line prints ``str(error)`` on one line and exits non-zero.
    """


class FileError(GtasrError):
    """One file cannot be used; the message names the file and the problem."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{printable_path(self.path)}: {problem}")


def printable_path(path: str) -> str:
    """``path`` as it reads in one line: a name with a line break or another control
    character is quoted with escapes (``'a\\nb.png'``), as ``ls`` quotes it."""
    if any(not char.isprintable() for char in path):
        return repr(path)
    return path


class InputError(FileError):
    """One input file cannot be read or used."""


class OutputError(FileError):
    """One output file cannot be written (full disk, read-only folder, name too long)."""


class RuntimeUnavailable(GtasrError):
    """An ONNX runtime cannot run a model here: not installed, or the model cannot be
    exported or compiled for it. ``--backend auto`` then runs the model with PyTorch."""


def one_line(message: str) -> str:
    """``message`` with its line breaks and runs of spaces folded into single spaces.

    Messages quote other libraries' errors (YAML parsers, decoders), some of which span
    lines; what gtasr reports stays on one.
    """
    return " ".join(message.split())


def first_line(error: BaseException) -> str:
    """An exception's message up to its first line break (some libraries' span paragraphs),
    or its type's name when it has none."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def is_out_of_memory(error: BaseException) -> bool:
    """True for the errors PyTorch and Python raise when a job does not fit in memory."""
    if isinstance(error, MemoryError):
        return True
    torch = sys.modules.get("torch")  # a PyTorch error implies PyTorch is loaded
    if torch is not None and isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )
