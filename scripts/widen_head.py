"""Write a copy of a model file whose x4 head is wider, computing the same output.

    python scripts/widen_head.py runs/ft_s2/model.safetensors v2.1-h48.safetensors --width 48

The copy is the start of a fine-tuning run with that wider network
(``--set model.network=...`` with the new ``head_channels``; docs/training-diagnosis.md,
Finding 15, has the commands and what it gained). The training configs the source
records are kept, so that ``bundle_model.py --after`` still records the whole chain, and
the description says what was widened. :mod:`gtasr.nets.grow` explains why the output
is unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from gtasr.modelfile import read_weights, save_described
from gtasr.nets.grow import widen_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="gtasr model file")
    parser.add_argument("output", type=Path, help="model file to write")
    parser.add_argument("--width", type=int, required=True, help="new head_channels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the new channels' weights")
    args = parser.parse_args()
    state, info = read_weights(args.source)
    wide, network = widen_head(state, info.network, args.width, seed=args.seed)
    extra = dict(info.extra)
    earlier = extra.get("description", args.source.name)
    extra["description"] = (
        f"{earlier}; then its x4 head widened from {info.network['head_channels']} to "
        f"{args.width} channels (scripts/widen_head.py, seed {args.seed})"
    )
    save_described(args.output, wide, dataclasses.replace(info, network=network, extra=extra))


if __name__ == "__main__":
    main()
