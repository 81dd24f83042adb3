"""Running external programs (apt-get, dpkg-deb, pip): a failure becomes one clear error line."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from gtasr.errors import GtasrError


def run_program(
    command: Sequence[str],
    cwd: Path | None = None,
    name: str | None = None,
    needs: str | None = None,
    env: Mapping[str, str] | None = None,
    error_prefix: str | None = None,
) -> None:
    """Run ``command`` with its output captured; on failure raise :class:`GtasrError`.

    The error names the program (``name``, default the first two words of the command) and
    quotes the last line it printed, or the first line starting with ``error_prefix`` when
    there is one (apt's first ``"E: "`` line says why, its last one only that something
    failed); ``needs`` says what a missing program implies. ``env`` replaces the
    environment. The program's output is not shown when it succeeds.
    """
    label = name or " ".join(command[:2])
    try:
        result = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as error:
        hint = f" ({needs})" if needs else ""
        raise GtasrError(f"{command[0]} not found{hint}") from error
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        flagged = [line for line in lines if error_prefix and line.startswith(error_prefix)]
        if flagged:
            reason = flagged[0]
        elif lines:
            reason = lines[-1]
        else:
            reason = f"exit code {result.returncode}"
        raise GtasrError(f"{label} failed: {reason}")
