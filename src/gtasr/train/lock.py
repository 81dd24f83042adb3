"""One trainer per run folder: an advisory lock file that names its holder's PID.

Two trainers writing one run folder delete each other's partial checkpoints and
interleave their metrics. The trainer holds an exclusive ``flock`` on
``RUN/train.lock`` for its whole life and writes its PID into it; the operating
system drops the lock when the process dies, however it dies, so a lock left by a
killed trainer is taken over (with a warning naming the dead PID), never obeyed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from gtasr.errors import GtasrError

log = logging.getLogger(__name__)

LOCK_NAME = "train.lock"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the ``with`` block; :class:`GtasrError` if another
    live trainer holds it. A run folder this call had to create is removed again when it
    is still empty at the end (a refused start leaves nothing behind)."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        raise GtasrError(f"{run_dir}: cannot use this run folder ({error.strerror})") from error
    try:
        _acquire(handle, run_dir)
        yield
    finally:
        _release(handle)
        if created:
            _remove_if_only_the_lock(run_dir)


def _acquire(handle, run_dir: Path) -> None:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        holder = _holder(handle)
        handle.close()
        raise GtasrError(
            f"{run_dir}: another trainer ({holder}) is using this run folder; wait for it to "
            "end or stop it"
        ) from None
    previous = _holder(handle, default="")
    if previous and previous != f"PID {os.getpid()}":
        log.warning("%s: taking over the lock of %s, which is no longer running", run_dir, previous)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()


def _holder(handle, default: str = "PID unknown") -> str:
    handle.seek(0)
    text = handle.read(32).strip()
    return f"PID {int(text)}" if text.isdigit() else default


def _release(handle) -> None:
    """Empty the file (a clean end leaves no PID to warn about) and drop the lock."""
    if handle.closed:
        return
    with contextlib.suppress(OSError):
        handle.seek(0)
        handle.truncate()
        handle.flush()
    handle.close()


def _remove_if_only_the_lock(run_dir: Path) -> None:
    with contextlib.suppress(OSError):
        if [p.name for p in run_dir.iterdir()] == [LOCK_NAME]:
            (run_dir / LOCK_NAME).unlink()
            run_dir.rmdir()
