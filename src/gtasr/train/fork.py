"""A new run folder from one checkpoint of another run, optionally at a new learning rate.

The controlled runs of docs/training-diagnosis.md each continue one checkpoint with one
change: ``gtasr train --resume`` reads the changed config (loss weights, degradation) but
takes the learning rate from the optimizer state, so :func:`fork` writes it there
(``scripts/fork_run.py`` is its command line).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from gtasr.errors import GtasrError
from gtasr.modelfile import read_info
from gtasr.train.checkpoints import (
    RAW_FILE,
    CheckpointStore,
    ModelMeta,
    checkpoint_name,
    read_checkpoint,
)


def fork(
    run: Path,
    step: int,
    new_run: Path,
    lr: float | None = None,
    milestones: list[int] | None = None,
) -> Path:
    """Write checkpoint ``step`` of ``run`` as the only (latest) checkpoint of ``new_run``.

    The trainer's own :class:`CheckpointStore` writes it, so a fork cut short leaves no
    checkpoint that ``--resume`` would take.
    """
    source = run / "checkpoints" / checkpoint_name(step)
    if not source.is_dir():
        raise GtasrError(f"{source}: no such checkpoint")
    if new_run.exists():
        raise GtasrError(f"{new_run}: already exists")
    raw, ema, state = read_checkpoint(source)
    info = read_info(source / RAW_FILE)
    if lr is not None:
        for group in state["optimizer"]["param_groups"]:
            group["lr"] = lr
        scheduler = state["scheduler"]
        scheduler["_last_lr"] = [lr] * len(scheduler["_last_lr"])
        scheduler["milestones"] = Counter()
    if milestones is not None:
        state["scheduler"]["milestones"] = Counter(m for m in milestones if m > step)
    meta = ModelMeta(network=info.network, precond=info.precond, stage=info.stage)
    return CheckpointStore(new_run).save(step, meta, raw, ema, state)
