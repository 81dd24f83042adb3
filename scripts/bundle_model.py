"""Copy a run's final EMA model into the package as the bundled default model.

    python scripts/bundle_model.py runs/ta_s1_1000 --file best --description "GTASR-tiny, ..."
    python scripts/bundle_model.py runs/ft_s1 runs/ft_s2 --description "..."

The model is taken from the last run folder; ``--file best`` takes its best-validation
model instead of its final one. The weights are unchanged; the file gains the runs'
resolved configs (one YAML document per run, in the order given, so that a model made by
a chain of runs records each) and a description in its metadata (``gtasr info --model``
prints them), and is written atomically to ``src/gtasr/weights/gtasr-default.safetensors``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from safetensors.torch import load_file

from gtasr.modelfile import read_info, save_described

TARGET = Path(__file__).resolve().parents[1] / "src/gtasr/weights/gtasr-default.safetensors"


def training_configs(runs: list[Path]) -> str:
    """The runs' config.yaml files as one YAML stream, each document headed by its run."""
    documents = [
        f"# {run.name}\n{(run / 'config.yaml').read_text(encoding='utf-8')}" for run in runs
    ]
    return "---\n".join(documents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "runs", type=Path, nargs="+", help="run folders in training order; the last one's model"
    )
    parser.add_argument("--file", choices=("model", "best"), default="model")
    parser.add_argument("--description", required=True)
    parser.add_argument("-o", "--output", type=Path, default=TARGET, help="model file to write")
    args = parser.parse_args()
    source = args.runs[-1] / f"{args.file}.safetensors"
    info = read_info(source)
    extra = dict(info.extra)
    extra["description"] = args.description
    extra["training_config"] = training_configs(args.runs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_described(args.output, load_file(str(source)), dataclasses.replace(info, extra=extra))


if __name__ == "__main__":
    main()
