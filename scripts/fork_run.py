"""Start a new run folder from one checkpoint of another run, optionally at a new learning rate.

    python scripts/fork_run.py RUN STEP NEW_RUN [--lr LR]
    gtasr train CONFIG --set ... -o NEW_RUN --resume

The controlled runs of docs/training-diagnosis.md each continue one checkpoint with one
change: ``--resume`` reads the changed config (loss weights, ``loss.ct_target``) but takes
the learning rate from the optimizer state, so ``--lr`` writes it there. A run forked with
``--lr`` at step S is what ``train.lr_milestones: [S]`` gives, with ``train.lr_gamma`` the
ratio of the two rates (the later milestones of the source run are dropped).
"""

from __future__ import annotations

import argparse
import shutil
from collections import Counter
from pathlib import Path

from gtasr.train.checkpoints import LATEST, checkpoint_name, read_state, write_state


def fork(run: Path, step: int, new_run: Path, lr: float | None = None) -> Path:
    """Copy checkpoint ``step`` of ``run`` into ``new_run`` as its only (latest) checkpoint."""
    source = run / "checkpoints" / checkpoint_name(step)
    if not source.is_dir():
        raise SystemExit(f"{source}: no such checkpoint")
    target = new_run / "checkpoints" / checkpoint_name(step)
    if new_run.exists():
        raise SystemExit(f"{new_run}: already exists")
    shutil.copytree(source, target)
    if lr is not None:
        state = read_state(target)
        for group in state["optimizer"]["param_groups"]:
            group["lr"] = lr
        scheduler = state["scheduler"]
        scheduler["_last_lr"] = [lr] * len(scheduler["_last_lr"])
        scheduler["milestones"] = Counter()
        write_state(target, state)
    (target.parent / LATEST).write_text(f"{target.name}\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("step", type=int)
    parser.add_argument("new_run", type=Path)
    parser.add_argument("--lr", type=float, default=None, help="learning rate from the fork on")
    args = parser.parse_args()
    print(fork(args.run, args.step, args.new_run, args.lr))


if __name__ == "__main__":
    main()
