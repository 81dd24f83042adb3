"""Swin window attention, used in every attention slot of the U-Net.

Each slot projects the feature map to a fixed embedding width with a 1x1
convolution, runs one Swin transformer block (window multi-head self-attention
with a learned relative position bias, then an MLP, both pre-norm residual),
projects back with a 1x1 convolution and adds the result to its input through
a 3x3 convolution. Windows are not shifted (one block per slot).

Feature maps whose height or width is not a multiple of the window are
zero-padded after the first normalisation and cropped after attention, the
way Swin handles arbitrary sizes; all shapes are computed from the tensor, so
the module traces to ONNX with dynamic height and width.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def tracing() -> bool:
    """True while the module is being traced or exported (shape branches must stay general)."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


def group_norm(channels: int, groups: int = 32, eps: float = 1e-5) -> nn.GroupNorm:
    """GroupNorm with at most ``groups`` groups, at least 4 channels per group when possible.

    The group count is the largest divisor of ``channels`` within those bounds
    (32 for every width of the paper network).
    """
    count = max(1, min(groups, channels // 4))
    while channels % count:
        count -= 1
    return nn.GroupNorm(count, channels, eps=eps)


def relative_position_index(window: int) -> Tensor:
    """Index into the (2w-1)^2 bias table for every (query, key) pair of a window.

    Pairs with the same row and column offset share one learned bias per head. Computed
    on the CPU under any device context: a network built on the ``meta`` device to learn
    its shapes then needs none of PyTorch's slow meta decompositions.
    """
    axis = torch.arange(window, device="cpu")
    coords = torch.stack(torch.meshgrid(axis, axis, indexing="ij")).flatten(1)
    offsets = coords[:, :, None] - coords[:, None, :] + (window - 1)
    return offsets[0] * (2 * window - 1) + offsets[1]


def window_partition(x: Tensor, window: int) -> Tensor:
    """(B, C, H, W) with H, W multiples of ``window`` -> (B * windows, window^2, C)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // window, window, w // window, window)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(-1, window * window, c)


def window_merge(windows: Tensor, window: int, batch: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * windows, window^2, C) -> (B, C, H, W)."""
    c = windows.shape[-1]
    x = windows.reshape(batch, height // window, width // window, window, window, c)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(batch, c, height, width)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping square windows."""

    def __init__(self, dim: int, heads: int, window: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.window = window
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer(
            "relative_position_index", relative_position_index(window).flatten(), persistent=False
        )
        nn.init.trunc_normal_(self.relative_position_bias, std=0.02)
        for linear in (self.qkv, self.proj):
            nn.init.trunc_normal_(linear.weight, std=0.02)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def position_bias(self) -> Tensor:
        """The additive attention bias, shape (1, heads, window^2, window^2)."""
        n = self.window * self.window
        bias = self.relative_position_bias[self.relative_position_index]
        return bias.reshape(n, n, self.heads).permute(2, 0, 1).unsqueeze(0)

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens: (windows, window^2, dim) -> same shape."""
        nw, n, dim = tokens.shape
        qkv = self.qkv(tokens).reshape(nw, n, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.position_bias().to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(nw, n, dim))


class SwinBlock(nn.Module):
    """One Swin transformer block on a (B, dim, H, W) map: window attention, then MLP.

    ``norm_groups`` 0 sizes the two GroupNorms by :func:`group_norm`'s rule; a
    positive value uses exactly that many groups at any width (the authors'
    release normalises its Swin blocks with 32 groups, even at 32 channels).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int,
        mlp_ratio: float,
        qkv_bias: bool = True,
        norm_groups: int = 0,
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.window = window
        self.norm1 = nn.GroupNorm(norm_groups, dim) if norm_groups else group_norm(dim)
        self.attn = WindowAttention(dim, heads, window, qkv_bias)
        self.norm2 = nn.GroupNorm(norm_groups, dim) if norm_groups else group_norm(dim)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def attend(self, x: Tensor) -> Tensor:
        """Window attention over ``x``, padding it to whole windows and cropping back."""
        b, _, h, w = x.shape
        pad_h = (self.window - h % self.window) % self.window
        pad_w = (self.window - w % self.window) % self.window
        padded = tracing() or bool(pad_h or pad_w)
        if padded:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        out = self.attn(window_partition(x, self.window))
        out = window_merge(out, self.window, b, h + pad_h, w + pad_w)
        return out[:, :, :h, :w] if padded else out

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attend(self.norm1(x))
        return self.fc2(F.gelu(self.fc1(self.norm2(x)))).add_(x)


class SwinAttention(nn.Module):
    """An attention slot of the U-Net: 1x1 in, Swin block, 1x1 out, 3x3 conv residual.

    ``block`` holds :class:`SwinBlock`'s other arguments.
    """

    def __init__(self, channels: int, dim: int, **block: Any) -> None:
        super().__init__()
        self.embed = nn.Conv2d(channels, dim, 1)
        self.block = SwinBlock(dim, **block)
        self.unembed = nn.Conv2d(dim, channels, 1)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.unembed(self.block(self.embed(x)))).add_(x)
