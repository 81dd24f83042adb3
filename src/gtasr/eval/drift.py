"""Timestep drift (paper Fig. 2): how well x0 is predicted from each point of the trajectory.

At every grid point ``eta_k = (k / K) ** power`` of the ground-truth bridge the model
predicts x0; the drift curve of a checkpoint is that prediction's error against eta
(docs/diagnostics.md defines it). A model consistent along the whole trajectory gives a
flat curve; growth towards eta = 1, where inference starts, is the drift that Trajectory
Alignment targets.
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
from gtasr.method.schedule import power_grid, upsample_lr

DEFINITIONS = {
    "eta": "bridge position: x(eta) = (1 - eta) x0 + eta (y0 + eps); eta = 1 is x_T = y0 + eps",
    "mean_abs_error": "mean over images, draws, channels, pixels of "
    "|clamp(f(x(eta), eta, y), -1, 1) - x0|, [-1, 1] units",
    "lpips": "mean over images and draws of LPIPS-alex(clamp(f(x(eta), eta, y), -1, 1), x0)",
}


@dataclass(frozen=True)
class DriftConfig:
    """Grid and noise of the drift analysis."""

    grid_points: int = 8
    """K: number of non-zero grid points, the last one eta = 1 (x_T)."""
    power: float = 1.0
    """Grid exponent: eta_k = (k / K) ** power."""
    draws: int = 1
    """Noise draws per image (the same draws for every checkpoint)."""
    seed: int = 0
    lpips: bool = False
    """Also measure LPIPS-alex (needs the LPIPS weights)."""


def drift_etas(grid_points: int, power: float = 1.0) -> list[float]:
    """The non-zero grid points (k / K) ** power, k = 1..K; the last is 1 (x_T)."""
    return power_grid(grid_points, power)[1:].tolist()


def _model_curves(
    loaded: LoadedModel,
    pairs: Sequence[ImagePair],
    noises: Sequence[Tensor],
    etas: Sequence[float],
    device: torch.device,
    lpips: nn.Module | None,
) -> dict[str, Any]:
    """Per-image drift of one checkpoint, and its means over images."""
    errors = np.zeros((len(pairs), len(etas)))
    perceptual = np.zeros((len(pairs), len(etas)))
    for i, (pair, noise) in enumerate(zip(pairs, noises, strict=True)):
        eps = noise.to(device)
        draws = fixed_noise(eps)
        x0 = pair.x0.to(device).expand_as(eps)
        y = pair.y.to(device).expand(eps.shape[0], -1, -1, -1)
        y0 = upsample_lr(y)
        for k, eta in enumerate(etas):
            prediction = sample(loaded.model, y, y0, draws, [eta], x0=x0)
            errors[i, k] = float((prediction - x0).abs().mean())
            if lpips is not None:
                with torch.no_grad():
                    perceptual[i, k] = float(lpips(prediction, x0).mean())
    curves: dict[str, Any] = {
        "name": loaded.name,
        "path": str(loaded.path),
        **loaded.info,
        "mean_abs_error": errors.mean(axis=0).tolist(),
        "per_image_mean_abs_error": errors.tolist(),
    }
    if lpips is not None:
        curves["lpips"] = perceptual.mean(axis=0).tolist()
        curves["per_image_lpips"] = perceptual.tolist()
    return curves


def measure_drift(
    models: Sequence[LoadedModel],
    pairs: Sequence[ImagePair],
    config: DriftConfig,
    device: torch.device,
) -> dict[str, Any]:
    """Drift curves of every checkpoint on the same images and noise (the JSON document)."""
    etas = drift_etas(config.grid_points, config.power)
    noises = draw_noises(pairs, config.draws, config.seed)
    lpips = None
    if config.lpips:
        from gtasr.perceptual import LPIPS

        lpips = LPIPS(net="alex").to(device).eval()
    return {
        "analysis": "timestep drift",
        "definitions": DEFINITIONS,
        "etas": etas,
        "x_T_index": len(etas) - 1,
        "grid": {"points": config.grid_points, "power": config.power},
        "draws": config.draws,
        "seed": config.seed,
        "images": [pair.stem for pair in pairs],
        "models": [_model_curves(m, pairs, noises, etas, device, lpips) for m in models],
    }


def plot_drift(document: dict[str, Any], path: Path) -> None:
    """Error against eta, one line per checkpoint; the x_T point is marked with a star."""
    panels = ["mean_abs_error"] + (["lpips"] if "lpips" in document["models"][0] else [])
    labels = {
        "mean_abs_error": "mean |x0_hat - x0|  ([-1, 1] units)",
        "lpips": "LPIPS-alex(x0_hat, x0)",
    }
    figure = new_figure(5.5 * len(panels), 4.0)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    etas = document["etas"]
    for axis, key in zip(axes, panels, strict=True):
        for model in document["models"]:
            line = axis.plot(etas, model[key], marker="o", label=model["name"])[0]
            axis.plot(etas[-1], model[key][-1], marker="*", markersize=14, color=line.get_color())
        axis.set_xlabel("eta (position on the bridge x(eta) = (1-eta) x0 + eta (y0+eps))")
        axis.set_ylabel(labels[key])
        axis.set_title(f"Timestep drift, {len(document['images'])} images  (star: from x_T)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    save_figure(figure, path)
