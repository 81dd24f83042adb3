"""What the paper's diagnostics share: test pairs as tensors, models, figures.

The timestep-drift (:mod:`gtasr.eval.drift`) and geometric-decoupling
(:mod:`gtasr.eval.decoupling`) analyses run model files on (ground truth, LR)
pairs matched by stem. Tensors are NCHW in [-1, 1], as everywhere in gtasr.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gtasr.errors import GtasrError, InputError
from gtasr.fileio import atomic_path
from gtasr.imageio import read_image, to_tensor

SCALE = 4


@dataclass(frozen=True)
class TestPair:
    """One test image: its stem, ground truth x0 (1x3xHxW) and LR y (1x3x(H/4)x(W/4))."""

    stem: str
    x0: Tensor
    y: Tensor


@dataclass(frozen=True)
class LoadedModel:
    """A consistency model from a file, with the label used in plots and JSON."""

    name: str
    path: Path
    model: nn.Module
    info: dict[str, Any]

    @property
    def stride(self) -> int:
        """LR sizes must be a multiple of this (the backbone's down-sampling factor)."""
        return int(getattr(self.model.backbone, "stride", 1))


def load_models(paths: Sequence[str | os.PathLike[str]], device: torch.device) -> list[LoadedModel]:
    """Load model files; each is labelled by its file stem (its path when stems repeat)."""
    from gtasr.modelfile import load_model

    if not paths:
        raise GtasrError("give at least one --model")
    files = [Path(p) for p in paths]
    stems = [f.stem for f in files]
    models = []
    for file in files:
        model, info = load_model(file, device)
        name = file.stem if stems.count(file.stem) == 1 else str(file)
        summary = {"stage": info.stage, "iteration": info.iteration, "weights": info.weights}
        models.append(LoadedModel(name=name, path=file, model=model, info=summary))
    return models


def common_stride(models: Sequence[LoadedModel]) -> int:
    """The least common multiple of the models' strides."""
    return math.lcm(*(m.stride for m in models))


def load_test_pairs(
    gt_dir: Path, lq_dir: Path, stride: int = 1, limit: int | None = None
) -> list[TestPair]:
    """GT/LR pairs matched by stem, LR cropped to a multiple of ``stride`` (GT accordingly).

    A GT image must be exactly 4x its LR image; anything else is an error naming both.
    """
    from gtasr.eval.evaluate import images_by_stem

    gts = images_by_stem(Path(gt_dir))
    lqs = images_by_stem(Path(lq_dir))
    unmatched = [(gts[s], lq_dir) for s in sorted(gts.keys() - lqs.keys())]
    unmatched += [(lqs[s], gt_dir) for s in sorted(lqs.keys() - gts.keys())]
    if unmatched:
        path, other = unmatched[0]
        raise InputError(path, f"no image with the same stem in {other}")
    pairs = []
    for stem in sorted(gts)[:limit]:
        gt, lq = read_image(gts[stem]), read_image(lqs[stem])
        if (gt.height, gt.width) != (SCALE * lq.height, SCALE * lq.width):
            raise InputError(
                gts[stem],
                f"{gt.width}x{gt.height} is not {SCALE}x its LR {lqs[stem]} "
                f"({lq.width}x{lq.height})",
            )
        h, w = lq.height - lq.height % stride, lq.width - lq.width % stride
        if h == 0 or w == 0:
            raise InputError(lqs[stem], f"smaller than the network stride {stride}")
        y = to_tensor(lq.rgb[:h, :w])
        x0 = to_tensor(gt.rgb[: SCALE * h, : SCALE * w])
        pairs.append(TestPair(stem=stem, x0=x0, y=y))
    return pairs


def draw_noises(pairs: Sequence[TestPair], draws: int, seed: int) -> list[Tensor]:
    """Per image, ``draws`` standard-normal HR noise maps (Tensor[draws, 3, H, W], CPU float32).

    One CPU generator seeded with ``seed`` draws them in image order, before any
    model runs, so every checkpoint sees the same noise for the same image and
    draw: differences between checkpoints are not differences between samples.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return [torch.randn((draws, *pair.x0.shape[1:]), generator=generator) for pair in pairs]


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no global backend change)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise GtasrError("plots need matplotlib: pip install 'gtasr[eval]'") from error
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: Path) -> None:
    """Write a figure as PNG atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
