"""Periodic validation: one-step SR of data.val_dir's LR images against their GT.

``val_dir`` holds ``gt/`` and ``lq/`` folders matched by file stem (what
``gtasr make-testset`` writes; :mod:`gtasr.data.pairs`). Each validation upscales up to
``val.max_images`` pairs with the EMA model and a fixed noise seed, and
reports PSNR-Y, LPIPS (AlexNet, the field's convention), the mean absolute
error (the "validation loss") and writes a grid PNG: bicubic | SR | GT rows.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch

from gtasr.data.pairs import ImagePair, load_pairs
from gtasr.errors import GtasrError
from gtasr.imageio import quantize, to_numpy, write_image
from gtasr.method.sampling import generator_noise, sample
from gtasr.method.schedule import upsample_lr

log = logging.getLogger(__name__)


def load_val_pairs(val_dir: str | Path, stride: int, max_images: int) -> list[ImagePair]:
    """The first ``max_images`` GT/LR pairs of ``val_dir/{gt,lq}``."""
    root = Path(val_dir)
    if not (root / "gt").is_dir() or not (root / "lq").is_dir():
        raise GtasrError(f"{root}: a validation folder needs gt/ and lq/ sub-folders")
    return load_pairs(root / "gt", root / "lq", stride=stride, limit=max_images)


def _uint8(image: torch.Tensor) -> np.ndarray:
    """[-1, 1] Tensor[1,3,H,W] -> uint8-range float64 HxWx3 (rounded, as saved images are)."""
    return quantize(to_numpy(image), 8).astype(np.float64)


class Validator:
    """Runs validation for the trainer (rank 0 only)."""

    def __init__(
        self,
        pairs: list[ImagePair],
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

    @functools.cached_property
    def bicubic_psnr_y(self) -> float:
        """Mean PSNR-Y of bicubic x4 on the validation pairs, computed once."""
        from gtasr.eval.metrics import psnr_y

        values = [
            psnr_y(_uint8(upsample_lr(pair.y.to(self.device))), _uint8(pair.x0.to(self.device)))
            for pair in self.pairs
        ]
        return float(np.mean(values))

    @torch.no_grad()
    def run(self, model: torch.nn.Module, grid_path: Path | None = None) -> dict[str, float]:
        """Upscale every pair with ``model`` and return the mean metrics."""
        from gtasr.eval.metrics import psnr_y

        was_training = model.training
        model.eval()
        psnrs, lpips_values, errors, rows = [], [], [], []
        for index, pair in enumerate(self.pairs):
            lr, gt = pair.y.to(self.device), pair.x0.to(self.device)
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
            write_image(grid_path, to_numpy(torch.cat(padded, dim=-2)))
        return metrics
