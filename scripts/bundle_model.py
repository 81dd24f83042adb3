"""Copy a run's final EMA model into the package as the bundled default model.

    python scripts/bundle_model.py runs/ta_s1_1000 --file best --description "GTASR-tiny, ..."
    python scripts/bundle_model.py runs/ft_s1 runs/ft_s2 --description "..."
    python scripts/bundle_model.py runs/ft2_s1 runs/ft2_s2 --after v2.1.safetensors --description D

The model is taken from the last run folder; ``--file best`` takes its best-validation
model instead of its final one. The weights are unchanged; the file gains the runs'
resolved configs (one YAML document per run, in the order given, so that a model made by
a chain of runs records each) and a description in its metadata (``gtasr info --model``
prints them), and is written atomically to ``src/gtasr/weights/gtasr-default.safetensors``.
``--after`` names the model file the first run started from: the configs it records come
first, so that a model fine-tuned from a bundled one keeps the whole chain. ``--half``
stores the weights as float16, which halves the file of a larger network.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from safetensors.torch import load_file

from gtasr.modelfile import CONVENTION_TENSORS, read_info, save_described

TARGET = Path(__file__).resolve().parents[1] / "src/gtasr/weights/gtasr-default.safetensors"


def training_configs(runs: list[Path]) -> str:
    """The runs' config.yaml files as one YAML stream, each document headed by its run."""
    documents = [
        f"# {run.name}\n{(run / 'config.yaml').read_text(encoding='utf-8')}" for run in runs
    ]
    return "---\n".join(documents)


def recorded_configs(model: Path) -> str:
    """The training configs a model file records (empty where it records none)."""
    return read_info(model).extra.get("training_config", "")


def half_precision(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as float16 where it is a float32 weight; the one-element convention tensors
    (:data:`~gtasr.modelfile.CONVENTION_TENSORS`) and anything else stay as they are, exact."""
    if name in CONVENTION_TENSORS or tensor.dtype != torch.float32:
        return tensor
    return tensor.to(torch.float16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "runs", type=Path, nargs="+", help="run folders in training order; the last one's model"
    )
    parser.add_argument("--file", choices=("model", "best"), default="model")
    parser.add_argument("--description", required=True)
    parser.add_argument(
        "--after", type=Path, default=None, help="model file the first run was fine-tuned from"
    )
    parser.add_argument("-o", "--output", type=Path, default=TARGET, help="model file to write")
    parser.add_argument(
        "--half",
        action="store_true",
        help="store the weights as float16: half the file, and loading widens them to float32",
    )
    args = parser.parse_args()
    source = args.runs[-1] / f"{args.file}.safetensors"
    info = read_info(source)
    extra = dict(info.extra)
    extra["description"] = args.description
    configs = training_configs(args.runs)
    earlier = recorded_configs(args.after) if args.after is not None else ""
    extra["training_config"] = f"{earlier.rstrip()}\n---\n{configs}" if earlier else configs
    args.output.parent.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(source))
    if args.half:
        weights = {name: half_precision(name, tensor) for name, tensor in weights.items()}
    save_described(args.output, weights, dataclasses.replace(info, extra=extra))


if __name__ == "__main__":
    main()
