"""How much detail the training crops carry, next to the images a model is scored on.

    python scripts/crop_detail.py --photos data-cache/photos \
        --sets data-cache/testset-photos/gt ../shared/data/imagenet-test-sample/gt

Detail is the mean absolute difference between horizontally neighbouring pixels, in
8-bit grey levels, of random 64-px crops cut as the trainer cuts them: of the training
photos at their own scale and with each ``--short-side`` range of ``data.short_side``,
and of every image in each ``--sets`` folder at its own scale. Prints one JSON object
(docs/training-diagnosis.md quotes it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from gtasr.data.datasets import HRCropDataset
from gtasr.eval.bands import detail


def crop_detail(folder: Path, crop: int, per_image: int, short_side: list[int] | None) -> float:
    """Mean detail of ``per_image`` crops of every image in ``folder`` (the trainer's cropper)."""
    dataset = HRCropDataset([folder], crop_size=crop, short_side=short_side)
    return float(
        np.mean(
            [detail(dataset[i, seed]) for i in range(len(dataset)) for seed in range(per_image)]
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="training photos")
    parser.add_argument("--sets", type=Path, nargs="*", default=[], help="folders of GT images")
    parser.add_argument(
        "--short-side",
        nargs=2,
        type=int,
        action="append",
        default=None,
        metavar=("LOW", "HIGH"),
        help="a data.short_side range (repeatable; default: 128 512 and 256 256)",
    )
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--per-image", type=int, default=12, help="crops per photo or image")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ranges = args.short_side or [[128, 512], [256, 256]]
    result: dict[str, float] = {
        "training photos, own scale": crop_detail(args.photos, args.crop, args.per_image, None)
    }
    for low, high in ranges:
        result[f"training photos, short_side [{low}, {high}]"] = crop_detail(
            args.photos, args.crop, args.per_image, [low, high]
        )
    for folder in args.sets:
        result[str(folder)] = crop_detail(folder, args.crop, args.per_image, None)
    print(json.dumps({"crop": args.crop} | {k: round(v, 2) for k, v in result.items()}))


if __name__ == "__main__":
    main()
