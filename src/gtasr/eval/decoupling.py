"""Geometric decoupling (paper Fig. 4): positional error against structural variance.

The paper does not define its axes exactly; :data:`DEFINITIONS` (written into the JSON
document) and docs/diagnostics.md give ours. A checkpoint whose edges land in the same
place whatever the noise and the starting timestep has a low structural variance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gtasr.data.pairs import ImagePair
from gtasr.eval.diagnostics import LoadedModel, draw_noises, new_figure, save_figure
from gtasr.method.sampling import fixed_noise, sample
from gtasr.method.schedule import upsample_lr
from gtasr.perceptual import sobel_magnitude

POSITIONAL_LABEL = "positional error: mean |f(x_T) - x0| over draws and pixels ([-1, 1] units)"
STRUCTURAL_LABEL = "structural variance: mean over pixels of Var over (draw, t) of Sobel(f(x_t))"
DEFINITIONS = {
    "positional_error": "mean over K draws, channels, pixels of |clamp(f(y0 + eps_k, 1, y), -1, 1)"
    " - x0| ([-1, 1] units)",
    "structural_variance": "mean over channels and pixels of the population variance, over the K"
    " draws x timesteps t, of sobel_magnitude(clamp(f((1 - t) x0 + t (y0 + eps_k), t, y), -1, 1))",
}


@dataclass(frozen=True)
class DecouplingConfig:
    """Noise draws and timesteps of the decoupling analysis."""

    draws: int = 4
    timesteps: tuple[float, ...] = (1 / 3, 2 / 3, 1.0)
    seed: int = 0


def _predictions(
    model: nn.Module, pair: ImagePair, eps: Tensor, timesteps: Sequence[float]
) -> dict[float, Tensor]:
    """Clamped predictions from the bridge states at each timestep, for all K draws at once."""
    x0 = pair.x0.to(eps.device).expand_as(eps)
    y = pair.y.to(eps.device).expand(eps.shape[0], -1, -1, -1)
    y0 = upsample_lr(y)
    return {t: sample(model, y, y0, fixed_noise(eps), [t], x0=x0) for t in timesteps}


def image_axes(
    model: nn.Module, pair: ImagePair, eps: Tensor, timesteps: Sequence[float]
) -> tuple[float, float]:
    """(positional error, structural variance) of one image, as defined in the module docstring."""
    steps = sorted(set(timesteps) | {1.0})
    predictions = _predictions(model, pair, eps, steps)
    x0 = pair.x0.to(eps.device)
    positional = float((predictions[1.0] - x0).abs().mean())
    edges = torch.cat([sobel_magnitude(predictions[t]) for t in timesteps])
    structural = float(edges.var(dim=0, unbiased=False).mean())
    return positional, structural


def measure_decoupling(
    models: Sequence[LoadedModel],
    pairs: Sequence[ImagePair],
    config: DecouplingConfig,
    device: torch.device,
) -> dict[str, Any]:
    """Both axes for every image and checkpoint (the JSON document)."""
    noises = draw_noises(pairs, config.draws, config.seed)
    entries = []
    for loaded in models:
        axes = np.array(
            [
                image_axes(loaded.model, pair, noise.to(device), config.timesteps)
                for pair, noise in zip(pairs, noises, strict=True)
            ]
        )
        entries.append(
            {
                "name": loaded.name,
                "path": str(loaded.path),
                **loaded.info,
                "positional_error": axes[:, 0].tolist(),
                "structural_variance": axes[:, 1].tolist(),
                "mean_positional_error": float(axes[:, 0].mean()),
                "mean_structural_variance": float(axes[:, 1].mean()),
            }
        )
    return {
        "analysis": "geometric decoupling",
        "definitions": DEFINITIONS,
        "draws": config.draws,
        "timesteps": list(config.timesteps),
        "seed": config.seed,
        "images": [pair.stem for pair in pairs],
        "models": entries,
    }


def plot_decoupling(document: dict[str, Any], path: Path) -> None:
    """Scatter: one point per image and checkpoint; a large marker at each checkpoint's mean."""
    figure = new_figure(6.5, 5.0)
    axis = figure.subplots()
    for model in document["models"]:
        points = axis.scatter(
            model["positional_error"],
            model["structural_variance"],
            s=18,
            alpha=0.7,
            label=model["name"],
        )
        axis.scatter(
            model["mean_positional_error"],
            model["mean_structural_variance"],
            s=140,
            marker="X",
            color=points.get_facecolor()[0],
            edgecolor="black",
        )
    axis.set_xlabel(POSITIONAL_LABEL, fontsize=8)
    axis.set_ylabel(STRUCTURAL_LABEL, fontsize=8)
    steps = ", ".join(f"{t:.3g}" for t in document["timesteps"])
    axis.set_title(
        f"Geometric decoupling: {len(document['images'])} images, K = {document['draws']} draws, "
        f"t in {{{steps}}}  (X: mean)",
        fontsize=9,
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    save_figure(figure, path)
