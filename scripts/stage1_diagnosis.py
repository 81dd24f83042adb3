"""Figures and numbers for the Stage I diagnosis (docs/training-diagnosis.md).

For each run folder (``gtasr train`` output with checkpoints kept along the way) this

- plots the training terms of ``metrics.jsonl`` (L_CT and L_TA split into their LPIPS and
  Charbonnier parts, moving average over ``--smooth`` steps) and the validation curves;
- upscales the held-out validation LR images with every checkpoint's EMA model (seed 0, one
  step) and measures, per checkpoint, PSNR-Y, LPIPS-alex, the *grid excess* (how much of the
  power of SR - bicubic at the frequencies of a pattern with the LR pixel period, 4 HR
  pixels, stands above the neighbouring frequencies: 1 = no grid) and the
  high-frequency ratio (power above a quarter of the sampling rate, SR over GT) and the
  PSNR of the luma's low band (4x4 block means) and high band (the rest) separately;
- evaluates every checkpoint's f(x_eta, eta, y) on the bridge states of the validation
  images at the Stage I grid points, with the mean error f - x0 (a brightness bias) and the
  mean absolute error at each eta: L_CT only ties f to x0 at the lowest grid point, every
  other point learns from the network's own output there;
- draws one crop of one validation image for every checkpoint side by side.

    python scripts/stage1_diagnosis.py ~/gtasr-runs/diag/base ~/gtasr-runs/diag/ct \\
        --val data-cache/testset-photos -o docs/images/diagnosis

Writes ``OUT/terms.png``, ``OUT/validation.png``, ``OUT/spectrum.png``, ``OUT/bands.png``,
``OUT/crops-RUN.png`` and ``OUT/checkpoints.json`` (every number of the figures).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from gtasr.eval.bands import band_psnrs, luminance
from gtasr.eval.metrics import psnr_y
from gtasr.imageio import to_numpy
from gtasr.method.sampling import fixed_noise, sample
from gtasr.method.schedule import BridgeGrid, bridge, upsample_lr
from gtasr.modelfile import load_model
from gtasr.perceptual import LPIPS
from gtasr.train.checkpoints import EMA_FILE
from gtasr.train.validation import load_val_pairs

TERMS = ("ct_lpips", "ct_charbonnier", "ta_lpips", "ta_charbonnier")
ETAS = tuple(  # the interior and end points of Stage I's grids, N = 4 and N = 3
    sorted({eta for n in (4, 3) for eta in BridgeGrid.power_law(n).shift[1:]})
)
GRID_PERIOD = 4  # HR pixels per LR pixel


def read_metrics(run: Path) -> tuple[list[dict], list[dict]]:
    """(train records, val records) of a run's metrics.jsonl, one per step (last wins)."""
    train, val = {}, {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        (train if record["kind"] == "train" else val)[record["step"]] = record
    return [train[k] for k in sorted(train)], [val[k] for k in sorted(val)]


def moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Trailing mean over ``width`` values (shorter at the start)."""
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), width)
    return (cumulative[1:] - cumulative[np.arange(1, len(values) + 1) - counts]) / counts


def grid_excess(residual: np.ndarray) -> float:
    """Spectral peak of the residual at the LR-pixel-period frequencies (1 = no grid pattern).

    A pattern repeating every ``GRID_PERIOD`` pixels puts its power on the bins at multiples
    of 1/GRID_PERIOD cycles per pixel in both directions, so those bins stand out from their
    neighbours. Returns the power on those bins (DC excluded) over the mean power of the bins
    around each (offsets of up to 2 bins), summed over the bins.
    """
    h, w = residual.shape
    h, w = h - h % GRID_PERIOD, w - w % GRID_PERIOD
    power = np.abs(np.fft.fft2(residual[:h, :w] - residual[:h, :w].mean())) ** 2
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0)]
    peak, around = 0.0, 0.0
    for row in range(0, h, h // GRID_PERIOD):
        for col in range(0, w, w // GRID_PERIOD):
            if row == 0 and col == 0:
                continue
            peak += power[row, col]
            around += np.mean([power[(row + dy) % h, (col + dx) % w] for dy, dx in offsets])
    return float(peak / around)


def high_frequency_power(image: np.ndarray) -> float:
    """Power of the luma above a quarter of the sampling rate (per pixel)."""
    h, w = image.shape
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    return float(power[np.maximum(abs(fy), abs(fx)) > 0.25].sum() / (h * w))


def checkpoint_steps(run: Path) -> list[tuple[int, Path]]:
    """(step, EMA model file) of every kept checkpoint, by step."""
    found = []
    for folder in (run / "checkpoints").glob("step-*"):
        if (folder / EMA_FILE).is_file():
            found.append((int(folder.name.split("-")[-1]), folder / EMA_FILE))
    return sorted(found)


@torch.no_grad()
def score_checkpoint(path: Path, pairs: list, lpips: LPIPS) -> tuple[dict, list[np.ndarray]]:
    """Mean metrics of one EMA model on the validation pairs, and its SR images."""
    model, _ = load_model(path)
    psnrs, lpipses, grids, hf_ratios, band_rows, images = [], [], [], [], [], []
    for index, pair in enumerate(pairs):
        generator = torch.Generator().manual_seed(index)
        y0 = upsample_lr(pair.y)
        eps = torch.randn(y0.shape, generator=generator)
        sr = sample(model, pair.y, y0, fixed_noise(eps))
        sr_img, gt_img, bic_img = (to_numpy(t[0]) for t in (sr, pair.x0, y0))
        psnrs.append(psnr_y(np.round(sr_img * 255.0), np.round(gt_img * 255.0)))
        lpipses.append(float(lpips(sr, pair.x0).mean()))
        grids.append(grid_excess(luminance(sr_img) - luminance(bic_img)))
        hf_ratios.append(
            high_frequency_power(luminance(sr_img)) / high_frequency_power(luminance(gt_img))
        )
        band_rows.append(band_psnrs(sr_img, gt_img))
        images.append(sr_img)
    low, high = np.mean(band_rows, axis=0)
    metrics = {
        **bridge_errors(model, pairs),
        "psnr_y": float(np.mean(psnrs)),
        "lpips_alex": float(np.mean(lpipses)),
        "grid_excess": float(np.mean(grids)),
        "hf_ratio": float(np.mean(hf_ratios)),
        "psnr_low_band": float(low),
        "psnr_high_band": float(high),
    }
    return metrics, images


def bridge_errors(model: torch.nn.Module, pairs: list) -> dict[str, float]:
    """Mean f - x0 and mean |f - x0| of f(x_eta, eta, y) at each grid eta (fixed noise)."""
    out = {}
    for eta in ETAS:
        generator = torch.Generator().manual_seed(1)
        bias, error = [], []
        for pair in pairs:
            y0 = upsample_lr(pair.y)
            x = bridge(pair.x0, y0, torch.randn(y0.shape, generator=generator), eta)
            difference = model(x, eta, pair.y) - pair.x0
            bias.append(float(difference.mean()))
            error.append(float(difference.abs().mean()))
        out[f"bias@{eta}"], out[f"error@{eta}"] = float(np.mean(bias)), float(np.mean(error))
    return out


def plot_bridge(results: dict[str, list[dict]], out: Path) -> None:
    """Mean |f - x0| and mean f - x0 against eta: one colour per run, later checkpoints darker."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for colour, (name, rows) in enumerate(results.items()):
        for index, row in enumerate(rows):
            style = {"color": f"C{colour}", "alpha": (index + 1) / len(rows), "marker": "o"}
            label = f"{name} step {row['step']}" if index in (0, len(rows) - 1) else None
            axes[0].plot(ETAS, [row[f"error@{e}"] for e in ETAS], label=label, **style)
            axes[1].plot(ETAS, [row[f"bias@{e}"] for e in ETAS], **style)
    for axis, title in zip(axes, ("mean |f - x0|", "mean f - x0"), strict=True):
        axis.set_xscale("log")
        axis.set_xlabel("eta (grid point)")
        axis.set_title(title)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def save_panels(titles: Sequence[str], draw: Callable[[Any, str], None], out: Path) -> None:
    """One panel per title against the training step, ``draw(axis, title)`` filling each."""
    fig, axes = plt.subplots(1, len(titles), figsize=(4 * len(titles), 3.2))
    for axis, title in zip(axes, titles, strict=True):
        draw(axis, title)
        axis.set_title(title)
        axis.set_xlabel("step")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_terms(runs: dict[str, list[dict]], smooth: int, out: Path) -> None:
    """One panel per training term, one line per run (each run keeps its colour)."""

    def draw(axis: Any, term: str) -> None:
        for colour, (name, records) in enumerate(runs.items()):
            pairs = [(r["step"], r[term]) for r in records if r.get(term) is not None]
            if pairs:
                steps, values = np.array(pairs).T
                axis.plot(steps, moving_average(values, smooth), color=f"C{colour}", label=name)

    save_panels(TERMS, draw, out)


def plot_checkpoints(results: dict[str, list[dict]], keys: tuple[str, ...], out: Path) -> None:
    """One panel per checkpoint metric, one line per run."""

    def draw(axis: Any, key: str) -> None:
        for name, rows in results.items():
            axis.plot([r["step"] for r in rows], [r[key] for r in rows], marker="o", label=name)

    save_panels(keys, draw, out)


def save_crops(rows: list[dict], images: list[np.ndarray], box: int, out: Path) -> None:
    """A strip of one validation crop per checkpoint, labelled with the step."""
    fig, axes = plt.subplots(1, len(images), figsize=(2 * len(images), 2.3), squeeze=False)
    for axis, row, image in zip(axes[0], rows, images, strict=True):
        top, left = image.shape[0] // 2 - box // 2, image.shape[1] // 2 - box // 2
        axis.imshow(image[top : top + box, left : left + box].clip(0, 1), interpolation="nearest")
        axis.set_title(f"step {row['step']}", fontsize=8)
        axis.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--val", type=Path, required=True, help="folder with gt/ and lq/")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the plots")
    parser.add_argument("--smooth", type=int, default=100, help="moving-average width (steps)")
    parser.add_argument("--every", type=int, default=1, help="score every k-th checkpoint")
    parser.add_argument("--crop-image", type=int, default=0, help="validation image to crop")
    parser.add_argument("--crop", type=int, default=96, help="crop side in HR pixels")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    lpips = LPIPS("alex")
    train_logs, val_logs, results = {}, {}, {}
    for run in args.runs:
        train_logs[run.name], val_logs[run.name] = read_metrics(run)
        rows, crops = [], []
        checkpoints = checkpoint_steps(run)[:: args.every]
        stride = load_model(checkpoints[0][1])[0].backbone.stride if checkpoints else 1
        pairs = load_val_pairs(args.val, stride, 64)
        for step, path in checkpoints:
            metrics, images = score_checkpoint(path, pairs, lpips)
            rows.append({"step": step, **metrics})
            crops.append(images[args.crop_image])
        results[run.name] = rows
        if rows:
            save_crops(rows, crops, args.crop, args.output / f"crops-{run.name}.png")
    plot_terms(train_logs, args.smooth, args.output / "terms.png")
    plot_checkpoints(results, ("psnr_y", "lpips_alex"), args.output / "validation.png")
    plot_checkpoints(results, ("grid_excess", "hf_ratio"), args.output / "spectrum.png")
    plot_checkpoints(results, ("psnr_low_band", "psnr_high_band"), args.output / "bands.png")
    plot_bridge(results, args.output / "bridge.png")
    (args.output / "checkpoints.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
