"""Atomic file writing (an output appears complete or not at all) and JSON documents."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gtasr.errors import GtasrError


def _current_umask() -> int:
    """The process umask (mkstemp creates files 0600; outputs should get the usual mode)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file lives in the same folder so the final ``os.replace`` is
    atomic; it is fsynced first so a crash never leaves a truncated file under
    the final name. On any exception the temporary file is removed.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def refuse_existing(paths: Iterable[str | os.PathLike[str]], overwrite: bool) -> None:
    """Stop with one error naming the first output that exists, unless ``overwrite``."""
    if overwrite:
        return
    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise GtasrError(f"{existing[0]} exists{more}; use --overwrite to replace")


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float replaced by the string "inf", "-inf" or "nan".

    JSON has no such numbers. Strings keep the difference between a perfect score (PSNR of
    identical images is inf) and a failed one (nan), which ``null`` would lose.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


def write_json(path: str | os.PathLike[str], document: Any) -> None:
    """Write a JSON document atomically: UTF-8, indented, non-finite floats as strings."""
    text = json.dumps(json_ready(document), indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
