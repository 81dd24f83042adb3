"""Errors that reach the user as one line, never as a traceback."""

from __future__ import annotations


class GtasrError(Exception):
    """A problem the user can fix (bad path, bad config, missing weights).

    The command line prints ``str(error)`` on one line and exits non-zero.
    """


class InputError(GtasrError):
    """One input file cannot be used; its message names the file and the problem."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
