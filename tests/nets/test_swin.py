"""Window attention against a direct per-window computation, with and without padding."""

from __future__ import annotations

import pytest
import torch

from gtasr.nets.swin import SwinBlock, relative_position_index, window_merge, window_partition


def test_relative_position_index_is_centred_and_antisymmetric():
    w = 4
    idx = relative_position_index(w)
    centre = (w - 1) * (2 * w - 1) + (w - 1)
    assert idx.shape == (w * w, w * w)
    assert torch.all(idx.diagonal() == centre)
    assert torch.all(idx + idx.T == 2 * centre)
    # query (0, 0), key (3, 3): offset (-3, -3) -> table row 0
    assert idx[0, w * w - 1] == 0
    assert int(idx.max()) == (2 * w - 1) ** 2 - 1


def test_partition_and_merge_are_inverse():
    x = torch.arange(2 * 3 * 8 * 16, dtype=torch.float32).reshape(2, 3, 8, 16)
    win = window_partition(x, 4)
    assert win.shape == (2 * 2 * 4, 16, 3)
    # the first window holds the top-left 4x4 patch of image 0, row-major
    torch.testing.assert_close(win[0, :, 1], x[0, 1, :4, :4].reshape(-1))
    torch.testing.assert_close(window_merge(win, 4, 2, 8, 16), x)


def reference_attend(block: SwinBlock, x: torch.Tensor) -> torch.Tensor:
    """Zero-pad, then attention window by window with explicit softmax (the definition)."""
    attn, w = block.attn, block.window
    b, c, h, wd = x.shape
    hp, wp = -(-h // w) * w, -(-wd // w) * w
    padded = torch.zeros(b, c, hp, wp)
    padded[:, :, :h, :wd] = x
    out = torch.zeros_like(padded)
    heads, hd = attn.heads, c // attn.heads
    bias = attn.position_bias()[0]
    for i in range(0, hp, w):
        for j in range(0, wp, w):
            tok = padded[:, :, i : i + w, j : j + w].flatten(2).transpose(1, 2)
            q, k, v = attn.qkv(tok).reshape(b, w * w, 3, heads, hd).permute(2, 0, 3, 1, 4)
            weights = torch.softmax(q @ k.transpose(-1, -2) / hd**0.5 + bias, dim=-1)
            res = attn.proj((weights @ v).transpose(1, 2).reshape(b, w * w, c))
            out[:, :, i : i + w, j : j + w] = res.transpose(1, 2).reshape(b, c, w, w)
    return out[:, :, :h, :wd]


@pytest.mark.parametrize("size", [(8, 16), (6, 13)])
def test_window_attention_matches_definition(size):
    torch.manual_seed(0)
    block = SwinBlock(dim=12, heads=3, window=4, mlp_ratio=2.0)
    with torch.no_grad():
        block.attn.relative_position_bias.normal_()
    x = torch.randn(2, 12, *size)
    with torch.no_grad():
        torch.testing.assert_close(block.attend(x), reference_attend(block, x))


def test_attention_stays_inside_windows():
    torch.manual_seed(0)
    block = SwinBlock(dim=8, heads=2, window=4, mlp_ratio=2.0).eval()
    x = torch.randn(1, 8, 8, 8)
    changed = x.clone()
    changed[:, :, 0, 0] += 5.0  # a token of the top-left window
    with torch.no_grad():
        diff = (block.attend(x) - block.attend(changed)).abs().sum(1)[0]
    assert diff[:4, :4].min() > 0
    assert diff[4:, :].max() == 0 and diff[:, 4:].max() == 0
