"""A tiny backbone with the real backbone's signature, for testing the method code."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TinyBackbone(nn.Module):
    """F(x, c_noise, y): a conv over [x, nearest-upsampled y] plus a noise-label bias.

    ``dropout`` lets tests tell train mode from eval mode.
    """

    def __init__(self, width: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.inp = nn.Conv2d(6, width, 3, padding=1)
        self.noise = nn.Linear(1, width)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x: Tensor, c_noise: Tensor, y: Tensor) -> Tensor:
        up = F.interpolate(y, size=x.shape[-2:], mode="nearest")
        label = c_noise[:, None].to(self.noise.weight.dtype)  # a float32 label, as SongUNetSR's
        h = self.inp(torch.cat([x, up], dim=1)) + self.noise(label)[:, :, None, None]
        return self.out(self.drop(torch.tanh(h)))


@pytest.fixture
def make_backbone() -> Callable[..., TinyBackbone]:
    """Factory: ``make_backbone(seed=0, width=8, dropout=0.0)`` -> a seeded TinyBackbone."""

    def build(seed: int = 0, width: int = 8, dropout: float = 0.0) -> TinyBackbone:
        net = TinyBackbone(width, dropout)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in net.parameters():
                param.copy_(torch.randn(param.shape, generator=g) * 0.3)
        return net

    return build


@pytest.fixture
def batch() -> dict[str, Tensor]:
    """A fixed small (x0, y, y0) batch in [-1, 1]: 2 images, LR 4x4, HR 16x16."""
    g = torch.Generator().manual_seed(1234)
    x0 = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    y = F.avg_pool2d(x0, 4)
    y0 = F.interpolate(y, scale_factor=4, mode="bicubic", align_corners=False).clamp(-1, 1)
    return {"x0": x0, "y": y, "y0": y0}
