"""``gtasr train`` and ``gtasr info`` (see gtasr.cli)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from gtasr.infer.commands import add_weights_option
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

    info = subparsers.add_parser("info", help="describe a model file or training checkpoint")
    info.add_argument(
        "--model",
        required=True,
        type=Path,
        help="model file (gtasr or the authors' .pth), checkpoint folder or run folder",
    )
    add_weights_option(info)
    info.set_defaults(func=run_info)


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


def _model_files(path: Path) -> list[Path]:
    """A model file itself, or the raw and EMA files of a checkpoint / run folder."""
    from gtasr.train.checkpoints import EMA_FILE, RAW_FILE, resolve_checkpoint

    if path.is_file():
        return [path]
    if (path / "model.safetensors").is_file() and not (path / "checkpoints").is_dir():
        return [path / "model.safetensors"]
    folder = resolve_checkpoint(path)
    return [folder / RAW_FILE, folder / EMA_FILE]


def count_parameters(path: Path) -> int:
    """Number of network scalars stored in a safetensors file (read from its header)."""
    from safetensors import safe_open

    from gtasr.modelfile import CONVENTION_TENSORS

    with safe_open(str(path), framework="pt") as handle:
        names = [name for name in handle.keys() if name not in CONVENTION_TENSORS]  # noqa: SIM118
        return sum(math.prod(handle.get_slice(name).get_shape()) for name in names)


def preset_name(network: dict) -> str:
    """The preset whose architecture ``network`` is ("tiny preset"), or "custom architecture"."""
    from gtasr.nets import PRESETS, preset_config

    for name in PRESETS:
        if json.loads(json.dumps(preset_config(name))) == network:
            return f"{name} preset"
    return "custom architecture"


def _extra_line(key: str, value: str) -> str:
    """One line for a free-form metadata entry; long texts are only counted."""
    if "\n" in value.strip():
        return f"{key:<11} {value.count(chr(10)) + 1} lines in the file's metadata"
    return f"{key:<11} {value}"


_SETTINGS = (
    "base_channels",
    "channel_mults",
    "blocks_per_level",
    "attention_levels",
    "emb_channels",
    "swin_dim",
    "swin_heads",
    "swin_window",
    "swin_mlp_ratio",
    "head_channels",
    "upsampler",
)


def release_lines(file: Path, weights: str | None) -> list[str]:
    """What ``gtasr info`` says about an authors' checkpoint: the settings read from it."""
    from gtasr.fileio import file_sha256
    from gtasr.modelfile import read_weights

    state, info = read_weights(file, weights)
    settings = " ".join(f"{key}={info.network[key]}" for key in _SETTINGS)
    settings += f" res_con={info.network['lr_skip']}"
    lines = [
        f"file        {file}",
        "family      release (the authors' GTASR/CTMSR checkpoint; their test-time conventions)",
        f"weights     {info.extra['source_key']} ({info.weights})",
        f"settings    {settings.replace(', ', ',')} (read from the tensors)",
        f"parameters  {sum(t.numel() for t in state.values()):,}",
        f"sha256      {file_sha256(file)}",
    ]
    if "ignored" in info.extra:
        lines.append(f"ignored     {info.extra['ignored']} (not used by the network)")
    return lines


def run_info(args: argparse.Namespace) -> int:
    """Entry of ``gtasr info``: print what a model file (or checkpoint) is."""
    from gtasr.fileio import file_sha256
    from gtasr.modelfile import verify_model_file
    from gtasr.release import is_release_file

    for file in _model_files(args.model):
        if is_release_file(file):
            sys.stdout.write("\n".join(release_lines(file, args.weights)) + "\n\n")
            continue
        info = verify_model_file(file)  # the checks loading makes: info describes usable files
        parameters = count_parameters(file)
        preset = preset_name(info.network)
        lines = [
            f"file        {file}",
            f"network     {preset}",
            f"parameters  {parameters:,}",
            f"scale       x{info.scale}",
            f"stage       {info.stage}",
            f"steps       {info.iteration}",
            f"weights     {info.weights}",
            f"precond     {info.precond}",
            f"sha256      {file_sha256(file)}",
        ]
        lines += [_extra_line(key, value) for key, value in sorted(info.extra.items())]
        sys.stdout.write("\n".join(lines) + "\n\n")
    return EXIT_OK
