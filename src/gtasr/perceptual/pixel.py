"""Pixel-level distances and structure maps: Charbonnier and Sobel magnitude."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def charbonnier(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-sample mean of sqrt((a - b)^2 + eps), a smooth L1 distance -> Tensor[B]."""
    if a.shape != b.shape:
        raise ValueError(f"input shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return ((a - b).pow(2) + eps).sqrt().flatten(1).mean(dim=1)


def sobel_magnitude(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-channel Sobel gradient magnitude sqrt(gx^2 + gy^2 + eps), same shape as ``x``.

    ``gx`` is the cross-correlation with [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] and
    ``gy`` with its transpose, each channel on its own. Borders use replicate
    padding (the edge pixel is repeated), so a constant image has zero gradient
    everywhere, including the border, instead of the false edges zero padding
    would create.
    """
    if x.dim() != 4:
        raise ValueError(f"expected an NCHW batch, got shape {tuple(x.shape)}")
    channels = x.shape[1]
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
    kernels = torch.stack([gx, gx.t()])[:, None].to(x.dtype).repeat(channels, 1, 1, 1)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    grads = F.conv2d(padded, kernels, groups=channels)
    gx_map, gy_map = grads[:, 0::2], grads[:, 1::2]
    return (gx_map.pow(2) + gy_map.pow(2) + eps).sqrt()
