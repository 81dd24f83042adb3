"""Checkpoints of a run: model files, training state, a crash-safe ``latest`` pointer.

Layout under ``RUN/checkpoints``::

    step-00001000/model-raw.safetensors    online weights (a gtasr model file)
    step-00001000/model-ema.safetensors    EMA weights (what inference uses)
    step-00001000/state.safetensors        optimiser moments, reference net, ...
    step-00001000/state.json               step, scheduler, EMA decay, RNG states, counters
    latest                                  the name of the newest complete checkpoint

A checkpoint is written into a hidden ``.partial-*`` folder, fsynced, renamed
into place, and only then is ``latest`` replaced atomically. A process killed
at any moment therefore leaves ``latest`` naming a complete checkpoint (or no
``latest`` at all before the first one); stale partial folders are removed the
next time a checkpoint is written. A checkpoint damaged afterwards (a truncated
file, a disk error) is found when a resume reads it: :meth:`CheckpointStore.set_aside`
renames it ``damaged-step-*`` and the resume takes the newest one that reads.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gtasr.errors import GtasrError
from gtasr.fileio import atomic_path, atomic_write_bytes
from gtasr.modelfile import SWITCHES, ModelInfo, read_weights, save_model
from gtasr.train.state import pack, unpack

log = logging.getLogger(__name__)

RAW_FILE = "model-raw.safetensors"
EMA_FILE = "model-ema.safetensors"
STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
LATEST = "latest"
_PREFIX = "step-"
_PARTIAL = ".partial-"
_DAMAGED = "damaged-"


@dataclass(frozen=True)
class ModelMeta:
    """What ``save_model`` needs besides the tensors."""

    network: Mapping[str, Any]
    precond: Mapping[str, float]
    stage: int

    def write(
        self, path: Path, tensors: Mapping[str, torch.Tensor], iteration: int, weights: str
    ) -> None:
        """Write backbone ``tensors`` as a model file of this network at ``iteration`` (atomic)."""
        save_model(path, tensors, **vars(self), iteration=iteration, weights=weights)


def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint taken after ``step`` iterations."""
    return f"{_PREFIX}{step:08d}"


def write_state(folder: Path, state: Mapping[str, Any]) -> None:
    """Write a training-state mapping as safetensors + JSON into ``folder``."""
    from safetensors.torch import save_file

    skeleton, tensors = pack(dict(state))
    with atomic_path(folder / STATE_TENSORS) as tmp:
        save_file(tensors, str(tmp))
    atomic_write_bytes(folder / STATE_JSON, json.dumps(skeleton).encode("utf-8"))


def read_state(folder: Path) -> dict[str, Any]:
    """Read what :func:`write_state` wrote, on the CPU (RNG states must be CPU tensors)."""
    from safetensors.torch import load_file

    try:
        skeleton = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / STATE_TENSORS), device="cpu")
        return unpack(skeleton, tensors)
    except Exception as error:  # OSError, JSON, safetensors' own and missing-entry errors
        raise GtasrError(f"{folder}: damaged training state ({error})") from error


def read_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """Raw weights, EMA weights and training state of a checkpoint folder."""
    raw, _ = read_weights(folder / RAW_FILE)
    ema, _ = read_weights(folder / EMA_FILE)
    return raw, ema, read_state(folder)


class CheckpointStore:
    """Writes, finds and prunes the checkpoints of one run directory."""

    def __init__(self, run_dir: str | os.PathLike[str], keep: int = 3) -> None:
        self.root = Path(run_dir) / "checkpoints"
        self.keep = keep

    def save(
        self,
        step: int,
        meta: ModelMeta,
        raw: Mapping[str, torch.Tensor],
        ema: Mapping[str, torch.Tensor],
        state: Mapping[str, Any],
    ) -> Path:
        """Write the checkpoint of ``step`` and point ``latest`` at it."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / checkpoint_name(step)
        if not final.is_dir():
            partial = self.root / f"{_PARTIAL}{checkpoint_name(step)}.{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            try:
                for file, tensors, kind in ((RAW_FILE, raw, "raw"), (EMA_FILE, ema, "ema")):
                    meta.write(partial / file, tensors, step, kind)
                write_state(partial, state)
                _fsync_dir(partial)
                os.replace(partial, final)
            except BaseException:  # a full disk, Ctrl-C: no half checkpoint stays behind
                shutil.rmtree(partial, ignore_errors=True)
                raise
        atomic_write_bytes(self.root / LATEST, f"{final.name}\n".encode())
        _fsync_dir(self.root)
        self._prune(final)
        return final

    def _prune(self, newest: Path) -> None:
        """Keep the newest ``keep`` checkpoints and drop partial leftovers."""
        for stale in self.root.glob(f"{_PARTIAL}*"):
            if not stale.name.endswith(f".{os.getpid()}"):
                shutil.rmtree(stale, ignore_errors=True)
        complete = sorted(p for p in self.root.glob(f"{_PREFIX}*") if p.is_dir())
        for old in complete[: max(0, len(complete) - self.keep)]:
            if old != newest:
                shutil.rmtree(old, ignore_errors=True)

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None before the first one."""
        pointer = self.root / LATEST
        if not pointer.is_file():
            return None
        folder = self.root / pointer.read_text(encoding="utf-8").strip()
        if not is_complete(folder):
            raise GtasrError(f"{pointer}: names an incomplete checkpoint {folder.name}")
        return folder

    def holds_a_run(self) -> bool:
        """Whether any checkpoint (complete or not) or ``latest`` pointer is there."""
        return (self.root / LATEST).exists() or any(self.root.glob(f"{_PREFIX}*"))

    def candidates(self) -> list[Path]:
        """Complete checkpoints to resume from, newest first (by step, not by ``latest``)."""
        found = [p for p in self.root.glob(f"{_PREFIX}*") if p.is_dir() and is_complete(p)]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def set_aside(self, folder: Path) -> Path:
        """Rename a damaged checkpoint out of the way (kept for inspection, never resumed)."""
        target = folder.with_name(f"{_DAMAGED}{folder.name}")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(folder, target)
        return target


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds every file of a checkpoint."""
    names = (RAW_FILE, EMA_FILE, STATE_TENSORS, STATE_JSON)
    return all((folder / name).is_file() for name in names)


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Find a checkpoint folder from a run directory, its checkpoints folder or itself."""
    given = Path(path)
    if is_complete(given):
        return given
    for root in (given / "checkpoints", given):
        pointer = root / LATEST
        if pointer.is_file():
            folder = root / pointer.read_text(encoding="utf-8").strip()
            if is_complete(folder):
                return folder
    raise GtasrError(f"{given}: no complete training checkpoint found")


def init_model_file(source: str) -> Path:
    """The model file ``init_from`` names: a run or checkpoint folder's EMA weights, or
    the file of a model spec."""
    from gtasr.hub import resolve_model

    given = Path(source)
    if given.is_dir():
        return resolve_checkpoint(given) / EMA_FILE
    return resolve_model(source)


def check_same_model(info: ModelInfo, meta: ModelMeta, path: Path, what: str = "init_from") -> None:
    """Refuse weights whose network or preconditioning differ from the config's, naming
    the first setting that differs; ``what`` names the weights in the message."""
    off = dict.fromkeys(SWITCHES, False)  # a switch that is off may go unwritten
    ours = json.loads(json.dumps({**off, **meta.network, **meta.precond}))
    theirs = {**off, **info.network, **info.precond}
    for key in {**ours, **theirs}:
        if theirs.get(key) != ours.get(key):
            raise GtasrError(
                f"{path}: {what} has {key} {theirs.get(key)!r}, the config {ours.get(key)!r}"
            )
