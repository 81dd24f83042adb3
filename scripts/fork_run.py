"""Start a new run folder from one checkpoint of another run, optionally at a new learning rate.

    python scripts/fork_run.py RUN STEP NEW_RUN [--lr LR] [--milestones M1,M2]
    gtasr train CONFIG --set ... -o NEW_RUN --resume

The controlled runs of docs/training-diagnosis.md each continue one checkpoint with one
change: ``--resume`` reads the changed config (loss weights, degradation) but takes
the learning rate from the optimizer state, so ``--lr`` writes it there. A run forked with
``--lr`` at step S is what ``train.lr_milestones: [S]`` gives, with ``train.lr_gamma`` the
ratio of the two rates (the later milestones of the source run are dropped).
``--milestones`` replaces the steps at which the rate is cut from the fork on (the
scheduler keeps its own copy, so a changed ``train.lr_milestones`` alone would not): with
a longer or shorter ``train.iterations`` it reschedules a run that has not yet reached
any of the old or new milestones, as if it had been started with them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gtasr.errors import GtasrError
from gtasr.train.fork import fork


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("step", type=int)
    parser.add_argument("new_run", type=Path)
    parser.add_argument("--lr", type=float, default=None, help="learning rate from the fork on")
    parser.add_argument(
        "--milestones",
        type=lambda text: [int(part) for part in text.split(",")],
        help="steps at which the rate is cut from the fork on, e.g. 2900,5800",
    )
    args = parser.parse_args()
    try:
        print(fork(args.run, args.step, args.new_run, args.lr, args.milestones))
    except GtasrError as error:
        raise SystemExit(f"fork_run.py: {error}") from None


if __name__ == "__main__":
    main()
