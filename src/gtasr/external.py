"""Running external programs (apt-get, dpkg-deb, pip): a failure becomes one clear error line."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from gtasr.errors import GtasrError


def run_program(
    command: Sequence[str],
    cwd: Path | None = None,
    name: str | None = None,
    needs: str | None = None,
) -> None:
    """Run ``command`` with its output captured; on failure raise :class:`GtasrError`.

    The error names the program (``name``, default the first two words of the command) and
    quotes the last line it printed; ``needs`` says what a missing program implies. The
    program's output is not shown when it succeeds.
    """
    label = name or " ".join(command[:2])
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        hint = f" ({needs})" if needs else ""
        raise GtasrError(f"{command[0]} not found{hint}") from error
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit code {result.returncode}"
        raise GtasrError(f"{label} failed: {reason}")
