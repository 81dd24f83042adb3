"""Periodic validation: one-step SR of data.val_dir's LR images against their GT.

``val_dir`` holds ``gt/`` and ``lq/`` folders matched by file stem (what
``gtasr make-testset`` writes). Each validation upscales up to
``val.max_images`` pairs with the EMA model and a fixed noise seed, and
reports PSNR-Y, LPIPS (AlexNet, the field's convention), the mean absolute
error (the "validation loss") and writes a grid PNG: bicubic | SR | GT rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gtasr.data.datasets import PairedFolderDataset
from gtasr.errors import GtasrError
from gtasr.imageio import write_image
from gtasr.method.sampling import generator_noise, sample
from gtasr.method.schedule import upsample_lr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValPair:
    """One validation pair as [-1, 1] tensors, LR cropped to a multiple of the stride."""

    name: str
    lr: torch.Tensor
    gt: torch.Tensor


def load_pairs(val_dir: str | Path, stride: int, max_images: int, scale: int = 4) -> list[ValPair]:
    """Read up to ``max_images`` GT/LR pairs matched by stem from ``val_dir/{gt,lq}``."""
    root = Path(val_dir)
    if not (root / "gt").is_dir() or not (root / "lq").is_dir():
        raise GtasrError(f"{root}: a validation folder needs gt/ and lq/ sub-folders")
    dataset = PairedFolderDataset(root / "gt", root / "lq", scale=scale)
    pairs = []
    for index in range(min(len(dataset), max_images)):
        item = dataset[index]
        lr, gt = item["lq"].unsqueeze(0), item["gt"].unsqueeze(0)
        h = lr.shape[-2] // stride * stride
        w = lr.shape[-1] // stride * stride
        if h == 0 or w == 0:
            log.warning("%s: skipped (LR smaller than the network stride)", item["name"])
            continue
        pairs.append(ValPair(str(item["name"]), lr[..., :h, :w], gt[..., : h * scale, : w * scale]))
    if not pairs:
        raise GtasrError(f"{root}: no usable GT/LR validation pairs")
    return pairs


def _uint8(image: torch.Tensor) -> np.ndarray:
    """[-1, 1] Tensor[1,3,H,W] -> uint8-range float64 HxWx3 (rounded, as saved images are)."""
    rgb = image[0].float().add(1).mul(127.5).round().clamp(0, 255)
    return rgb.permute(1, 2, 0).cpu().numpy().astype(np.float64)


class Validator:
    """Runs validation for the trainer (rank 0 only)."""

    def __init__(
        self,
        pairs: list[ValPair],
        device: torch.device,
        seed: int,
        lpips: torch.nn.Module | None,
        grid_images: int,
    ) -> None:
        self.pairs = pairs
        self.device = device
        self.seed = seed
        self.lpips = lpips
        self.grid_images = grid_images

    @torch.no_grad()
    def run(self, model: torch.nn.Module, grid_path: Path | None = None) -> dict[str, float]:
        """Upscale every pair with ``model`` and return the mean metrics."""
        from gtasr.eval.metrics import psnr_y

        was_training = model.training
        model.eval()
        psnrs, lpips_values, errors, rows = [], [], [], []
        for index, pair in enumerate(self.pairs):
            lr, gt = pair.lr.to(self.device), pair.gt.to(self.device)
            generator = torch.Generator(device=self.device).manual_seed(self.seed + index)
            y0 = upsample_lr(lr)
            sr = sample(model, lr, y0, generator_noise(y0, generator)).float()
            psnrs.append(psnr_y(_uint8(sr), _uint8(gt)))
            errors.append(float((sr - gt).abs().mean()))
            if self.lpips is not None:
                lpips_values.append(float(self.lpips(sr, gt).mean()))
            if index < self.grid_images:
                rows.append(torch.cat([y0, sr, gt], dim=-1).cpu())
        model.train(was_training)
        metrics = {"psnr_y": float(np.mean(psnrs)), "l1": float(np.mean(errors))}
        if lpips_values:
            metrics["lpips"] = float(np.mean(lpips_values))
        if grid_path is not None and rows:
            width = max(r.shape[-1] for r in rows)
            padded = [torch.nn.functional.pad(r, (0, width - r.shape[-1]), value=-1) for r in rows]
            grid = torch.cat(padded, dim=-2)[0].add(1).mul(0.5).clamp(0, 1)
            write_image(grid_path, grid.permute(1, 2, 0).numpy())
        return metrics
