"""``gtasr train`` and ``gtasr info`` (see gtasr.cli)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from gtasr.options import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    add_device,
    add_output,
    positive,
)

log = logging.getLogger(__name__)

SIGNAL_EXITS = {"SIGINT": EXIT_INTERRUPTED, "SIGTERM": EXIT_TERMINATED}
"""Exit code of a run stopped by a signal, after its checkpoint (a stop on another rank of a
torchrun job exits as terminated)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``info``."""
    train = subparsers.add_parser(
        "train",
        help="train Stage I or Stage II from a YAML config",
        description="Train GTASR from a YAML config. Under torchrun the same command runs "
        "data-parallel (gloo on CPU, nccl on GPU).",
    )
    train.add_argument("config", type=Path, help="YAML config, e.g. configs/cpu_tiny_stage1.yaml")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a dotted config key; the value is YAML (repeatable)",
    )
    add_output(
        train,
        "run directory for checkpoints, logs and model files; default runs/CONFIG_NAME",
        folder=True,
        required=False,
    )
    fresh_or_resume = train.add_mutually_exclusive_group()
    fresh_or_resume.add_argument(
        "--resume", action="store_true", help="continue from the run directory's latest checkpoint"
    )
    fresh_or_resume.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in a run directory that holds a run: its outputs are deleted first",
    )
    add_device(train, default=None)
    train.add_argument(
        "--max-steps",
        type=positive,
        metavar="K",
        help="stop after K iterations of this invocation (checkpointed; --resume continues)",
    )
    train.add_argument(
        "--until-step",
        type=positive,
        metavar="N",
        help="stop at iteration N of the run, counted from its start (checkpointed)",
    )
    train.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Entry of ``gtasr train``: 0 when the run finished or reached ``--max-steps`` or
    ``--until-step``; 130 or 143 when Ctrl-C or SIGTERM stopped it (after writing its
    checkpoint)."""
    from gtasr.train.config import load_config
    from gtasr.train.distributed import setup, teardown
    from gtasr.train.run import train

    device = [f"train.device={args.device}"] if args.device else []  # recorded in config.yaml
    config = load_config(args.config, [*args.overrides, *device])
    run_dir = args.output or Path("runs") / args.config.stem
    env = setup(config.train.device)
    if not env.is_main:
        logging.getLogger("gtasr").setLevel(logging.WARNING)
    try:
        summary = train(
            config,
            run_dir,
            env,
            resume=args.resume,
            max_steps=args.max_steps,
            overwrite=args.overwrite,
            until_step=args.until_step,
        )
    finally:
        teardown()
    if env.is_main:
        rate = f"{summary.steps_per_s:.3g} it/s" if summary.steps_done else "no steps run"
        val = " ".join(f"{k} {v:.4g}" for k, v in summary.validation.items()) or "none"
        log.info(
            "%s at step %d: %d steps in %.1f s (%s); validation: %s; NaN/Inf steps skipped: %d",
            f"stopped by {summary.stopped_by}" if summary.stopped_by else "finished",
            summary.final_step,
            summary.steps_done,
            summary.wall_s,
            rate,
            val,
            summary.nonfinite_total,
        )
        log.info("run directory: %s", run_dir)
    if summary.stopped_by is None:
        return EXIT_OK
    return SIGNAL_EXITS.get(summary.stopped_by, EXIT_TERMINATED)
