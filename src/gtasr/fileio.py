"""Atomic file writing (an output appears complete or not at all) and JSON documents."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gtasr.errors import GtasrError, OutputError


def _current_umask() -> int:
    """The process umask (mkstemp creates files 0600; outputs should get the usual mode)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


TEMP_STEM_CHARS = 32
"""Characters of the final stem kept in a temporary name, so that any name that fits the
file system also fits with the temporary decoration around it."""

_TEMP_NAME = re.compile(r"^\..*\.(\d+)\.[a-z0-9_]{8}\.tmp(\.[^.]*)?$")
_swept: set[Path] = set()


def _temp_affixes(final: Path) -> tuple[str, str]:
    """``.<stem, cut>.<pid>.`` and ``.tmp<suffix>``: the pid tells whose the file is."""
    suffix = final.suffix if len(final.suffix) <= 16 else ""
    return f".{final.stem[:TEMP_STEM_CHARS]}.{os.getpid()}.", f".tmp{suffix}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of :func:`atomic_path` left in ``folder`` by dead processes.

    A process killed while writing (SIGKILL, power loss) cannot remove its temporary file;
    the next process that writes into the folder does. Files of live processes stay.
    """
    removed = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            found = _TEMP_NAME.match(entry.name)
            if found and entry.is_file() and not _pid_alive(int(found.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def cache_folder() -> Path:
    """gtasr's cache: ``$GTASR_CACHE``, else ``$XDG_CACHE_HOME/gtasr``, else ``~/.cache/gtasr``."""
    if os.environ.get("GTASR_CACHE"):
        return Path(os.environ["GTASR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gtasr"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file lives in the same folder so the final ``os.replace`` is
    atomic; it is fsynced first so a crash never leaves a truncated file under
    the final name. On any exception the temporary file is removed. An operating
    system error while writing it (disk full, read-only folder, name too long)
    becomes an :class:`~gtasr.errors.OutputError` naming ``path``, also when a writer
    library wraps it in an exception of its own (safetensors). The first write
    into a folder removes what killed writers left there.
    """
    final = Path(path)
    prefix, suffix = _temp_affixes(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.parent not in _swept:
            _swept.add(final.parent)
            remove_stale_temporaries(final.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=final.parent)
        os.close(fd)
    except FileExistsError as error:  # mkdir met a file where a folder must be
        raise OutputError(final, f"cannot write ({error.filename} is not a folder)") from error
    except OSError as error:
        raise OutputError(final, f"cannot write ({error.strerror or error})") from error
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.filename not in (None, str(tmp), tmp):
            raise  # about another file the writer used
        raise OutputError(final, f"cannot write ({error.strerror or error})") from error
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        system_error = _wrapped_system_error(error)
        if system_error is None:
            raise
        raise OutputError(final, f"cannot write ({system_error})") from error


_RUST_IO_MESSAGE = re.compile(r'I/O error: (.+?) \(os error \d+\)|message: "([^"]+)"')


def _wrapped_system_error(error: BaseException) -> str | None:
    """The operating system's message inside a writer library's own exception, if any.

    safetensors reports a full disk as ``SafetensorError("Error while serializing: I/O
    error: No space left on device (os error 28)")`` (some versions print the Rust
    ``IoError(Os { ... message: "..." })``); other writers chain the ``OSError``.
    Anything else is not a write error and is re-raised as it is.
    """
    if not isinstance(error, Exception):  # Ctrl-C, SystemExit: never a write error
        return None
    if type(error).__name__ == "SafetensorError":
        found = _RUST_IO_MESSAGE.search(str(error))
        if found:
            return found.group(1) or found.group(2)
    cause = error.__cause__ or error.__context__
    if isinstance(cause, OSError):
        return cause.strerror or str(cause)
    return None


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
