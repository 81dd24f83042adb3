"""``gtasr info``, ``convert``, ``models`` and ``fetch-model``: model files, beside
:mod:`gtasr.modelfile` and :mod:`gtasr.hub`.

``info`` describes a gtasr model file, a training checkpoint or an authors' checkpoint
after making every check loading makes; ``convert`` writes any model file gtasr reads as
a self-describing gtasr file; ``models`` lists the models ``--model`` takes by name and
``fetch-model`` downloads one into the cache. PyTorch is imported only when a command
that reads weights runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from gtasr.choices import PRECISION_NAMES, TORCH_DTYPE_NAMES
from gtasr.fileio import refuse_existing
from gtasr.hub import MODEL_SPEC_HELP, resolve_model
from gtasr.options import EXIT_OK, add_output, add_overwrite, add_weights_option

if TYPE_CHECKING:
    import os

    from gtasr.modelfile import ModelInfo

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``info``, ``convert``, ``models`` and ``fetch-model``."""
    info = subparsers.add_parser("info", help="describe a model file or training checkpoint")
    info.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help=f"{MODEL_SPEC_HELP}; or a checkpoint folder or run folder",
    )
    add_weights_option(info)
    info.set_defaults(func=run_info)
    _register_convert(subparsers)
    _register_models(subparsers)


def _register_convert(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert the authors' checkpoint to a gtasr model file",
        description="Write a model file gtasr reads (the authors' GTASR/CTMSR .pth, or a "
        "gtasr file) as a self-describing gtasr .safetensors file.",
    )
    parser.add_argument("source", metavar="SRC", help=MODEL_SPEC_HELP)
    add_output(parser, "the gtasr model file to write, e.g. model.safetensors", folder=False)
    add_weights_option(parser)
    parser.add_argument(
        "--precision", choices=PRECISION_NAMES, default="fp32", help="stored precision (fp32)"
    )
    parser.add_argument(
        "--res-con",
        action="store_true",
        help="the network was trained with the release's res_con (its file cannot tell)",
    )
    add_overwrite(parser)
    parser.set_defaults(func=run_convert)


def _register_models(subparsers: argparse._SubParsersAction) -> None:
    """``models`` and ``fetch-model``."""
    models = subparsers.add_parser(
        "models",
        help="list the models --model takes by name",
        description="The models --model takes by name, with their source and whether they "
        "are in the local cache (Hugging Face's: HF_HOME, HF_HUB_CACHE). Besides these names "
        "--model takes a file, or hf://OWNER/REPO/FILE[@REVISION] for any file on the hub. "
        "Looks at the disk only.",
    )
    models.set_defaults(func=run_models)
    fetch = subparsers.add_parser(
        "fetch-model",
        help="download a model into the local cache",
        description="Download a model named as --model takes it (a name from `gtasr models` "
        "or hf://OWNER/REPO/FILE[@REVISION]) into Hugging Face's cache, where every command "
        "then finds it without a network; a model already there is not downloaded again.",
    )
    fetch.add_argument("model", metavar="MODEL", help="a name from `gtasr models` or hf://...")
    fetch.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="also copy the file here (a file)"
    )
    add_overwrite(fetch)
    fetch.set_defaults(func=run_fetch_model)


def run_models(args: argparse.Namespace) -> int:
    """``gtasr models``: the catalogue as a table."""
    from dataclasses import astuple, fields

    from gtasr.hub import CatalogueRow, catalogue_rows

    rows = [tuple(field.name for field in fields(CatalogueRow))]
    rows += [astuple(row) for row in catalogue_rows()]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        sys.stdout.write("  ".join(cells).rstrip() + "\n")
    return EXIT_OK


def run_fetch_model(args: argparse.Namespace) -> int:
    """``gtasr fetch-model``: the model in the cache, and copied to ``--output`` if given."""
    from gtasr.hub import copy_model, fetch_model

    if args.output is not None:
        refuse_existing([args.output], args.overwrite)
    file = fetch_model(args.model)
    log.info("%s: %s", args.model, file)
    if args.output is not None:
        copy_model(file, args.output)
        log.info("copied to %s", args.output)
    return EXIT_OK


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


MAX_CHANGED_SETTINGS = 3
"""A network that differs from a preset in more settings than this is a custom architecture."""


def preset_name(network: dict) -> str:
    """The preset ``network`` is ("tiny preset"), or the one it changes in a few settings
    ("tiny preset with head_channels=48"), or "custom architecture"."""
    from gtasr.nets import PRESETS, preset_config

    candidates = []
    for name in PRESETS:
        preset = json.loads(json.dumps(preset_config(name)))
        if set(network) == set(preset):
            changed = [f"{key}={network[key]}" for key in preset if network[key] != preset[key]]
            candidates.append((len(changed), name, changed))
    if not candidates or min(candidates)[0] > MAX_CHANGED_SETTINGS:
        return "custom architecture"
    _, name, changed = min(candidates)
    return f"{name} preset with {', '.join(changed)}" if changed else f"{name} preset"


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

    for file in _model_files(resolve_model(args.model)):
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


def run_convert(args: argparse.Namespace) -> int:
    """``gtasr convert``."""
    refuse_existing([args.output], args.overwrite)
    source = resolve_model(args.source)
    start = time.perf_counter()
    info = convert(
        source,
        args.output,
        weights=args.weights,
        precision=args.precision,
        res_con=args.res_con,
    )
    log.info(
        "wrote %s (%s model, %s weights from %s, %s) in %.1f s",
        args.output,
        info.family,
        info.weights,
        info.extra.get("source_key", source.name),
        args.precision,
        time.perf_counter() - start,
    )
    return EXIT_OK


def convert(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    weights: str | None = None,
    precision: str = "fp32",
    res_con: bool = False,
) -> ModelInfo:
    """Write a model file gtasr reads (typically a release ``.pth``) as a gtasr model file.

    The target records the family, the settings read from the tensors, the
    source's file name, SHA-256 and the key the weights came from; tensors are
    stored in ``precision`` (fp32, bf16 or fp16; loading computes in float32 again).
    Written atomically. Returns the description of what was written.
    """
    import torch

    from gtasr.fileio import file_sha256
    from gtasr.modelfile import read_info, read_weights, save_described

    state, info = read_weights(source, weights, res_con=res_con)
    dtype = getattr(torch, TORCH_DTYPE_NAMES[precision])
    stored = {
        name: tensor.to(dtype) if tensor.is_floating_point() else tensor
        for name, tensor in state.items()
    }
    extra = dict(info.extra)
    extra.update(source=Path(source).name, source_sha256=file_sha256(source), dtype=precision)
    save_described(target, stored, replace(info, extra=extra))
    return read_info(target)
