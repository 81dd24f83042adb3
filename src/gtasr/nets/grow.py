"""Widen the x4 head of a trained backbone without changing what it computes.

The tiny preset's head renders the 4x4 block of HR pixels per LR pixel from 16 channels,
the narrowest part of the network. :func:`widen_head` gives a trained network a wider head
that starts out as the same function: every new channel reads its inputs through fresh
weights and writes to the next layer through zero weights, so the output is unchanged
exactly and training can then put the new channels to use. The head has no
normalisation after its first conv, so no statistic sees the new channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from gtasr.errors import GtasrError
from gtasr.nets.presets import build_network

FRESH_GAIN = 0.1
"""Scale of the Xavier rows of ``head_conv``'s new channels: large enough to learn at the
fine-tuning learning rate (the trained rows started at 1e-5 and grew over a whole run),
small enough to keep the new activations near the old ones' size."""


def widen_head(
    state: Mapping[str, Tensor], network: Mapping[str, Any], width: int, seed: int = 0
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(state, network)`` of a backbone whose head has ``width`` channels, same output.

    Works for the ``nearest`` upsampler (the head of every gtasr preset); the
    ``pixelshuffle`` head's width is fixed by the 48 channels it rearranges.
    """
    old = int(network["head_channels"])
    if network.get("upsampler", "nearest") != "nearest":
        raise GtasrError("only the nearest-neighbour head can be widened")
    if width <= old:
        raise GtasrError(f"the head has {old} channels already; a wider head needs more")
    wide_network = {**network, "head_channels": int(width)}
    torch.manual_seed(seed)
    wide = build_network(wide_network).state_dict()
    out: dict[str, Tensor] = {}
    for name, target in wide.items():
        source = state[name]
        out[name] = (
            source.clone() if source.shape == target.shape else _widened(name, source, target, old)
        )
    return out, wide_network


def _widened(name: str, source: Tensor, fresh: Tensor, old: int) -> Tensor:
    """One head tensor: the trained block copied, new inputs zero, new outputs fresh."""
    layer, kind = name.rsplit(".", 1)
    weight = fresh.clone().to(source.dtype)
    if layer == "head_conv":
        if kind == "weight":
            torch.nn.init.xavier_uniform_(weight)
            weight.mul_(FRESH_GAIN)
        else:
            weight.zero_()
        weight[:old] = source
    elif layer in ("up1", "up2"):
        if kind == "weight":
            weight[:old] = 0
            weight[:old, :old] = source
        else:
            weight[:old] = source
    elif layer == "conv_out" and kind == "weight":
        weight.zero_()
        weight[:, :old] = source
    else:
        raise GtasrError(f"{name}: not a tensor of the head, cannot widen it")
    return weight
