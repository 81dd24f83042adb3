"""What the paper's diagnostics share: models, noise drawn in advance, figures.

The timestep-drift (:mod:`gtasr.eval.drift`) and geometric-decoupling
(:mod:`gtasr.eval.decoupling`) analyses run model files on (ground truth, LR)
pairs matched by stem (:func:`gtasr.data.pairs.load_pairs`). Tensors are NCHW
in [-1, 1], as everywhere in gtasr.
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

from gtasr.data.pairs import ImagePair
from gtasr.errors import GtasrError
from gtasr.fileio import atomic_path


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
    """Load models (files, names or ``hf://`` specs: :func:`gtasr.hub.resolve_model`); each
    is labelled by its file stem (its path when stems repeat)."""
    from gtasr.hub import resolve_model
    from gtasr.modelfile import load_model

    if not paths:
        raise GtasrError("give at least one --model")
    files = [resolve_model(p) for p in paths]
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


def draw_noises(pairs: Sequence[ImagePair], draws: int, seed: int) -> list[Tensor]:
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
