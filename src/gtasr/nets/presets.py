"""Named network sizes and :func:`build_network`, the one way to construct a backbone.

``paper`` is the authors' release (METHOD §3) and ``small`` its layout at a third of the
width; ``tiny`` is sized so that a Stage I training step runs on two CPU cores, and
``compact`` is tiny at twice the width with two blocks per level (a training step costs
1.3x tiny's). Their sizes and costs are in docs/networks.md (``python bench/network.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from gtasr.errors import GtasrError
from gtasr.nets.songunet import SongUNetConfig, SongUNetSR

_PRESET_CONFIGS: dict[str, SongUNetConfig] = {
    "paper": SongUNetConfig(),
    "small": SongUNetConfig(
        base_channels=64,
        emb_channels=256,
        swin_dim=64,
        swin_heads=2,
        head_channels=64,
    ),
    "tiny": SongUNetConfig(
        base_channels=32,
        channel_mults=(1, 2, 2),
        blocks_per_level=1,
        attention_levels=(1, 2),
        dropout=0.0,
        emb_channels=128,
        swin_dim=32,
        swin_heads=2,
        swin_mlp_ratio=2.0,
        head_channels=16,
    ),
}
_PRESET_CONFIGS["compact"] = replace(
    _PRESET_CONFIGS["tiny"],
    base_channels=64,
    blocks_per_level=2,
    emb_channels=256,
    swin_dim=64,
    head_channels=32,
)

ANCHORED_PRESETS: tuple[str, ...] = ("tiny", "compact")
"""Presets trained with ``lr_anchor`` unless the config says otherwise."""

PRESETS: tuple[str, ...] = tuple(_PRESET_CONFIGS)


def preset_config(name: str) -> dict[str, Any]:
    """The config dict of a named preset (what ``net.config`` of that preset returns)."""
    if name not in _PRESET_CONFIGS:
        raise GtasrError(f"unknown network preset {name!r}; choose one of {', '.join(PRESETS)}")
    return _PRESET_CONFIGS[name].to_dict()


def build_network(spec: str | Mapping[str, Any]) -> nn.Module:
    """Backbone from a preset name or a config dict (as stored in ``net.config``).

    The module has ``config`` (dict), ``scale`` (4), ``stride`` (LR sizes must
    be multiples of it) and ``forward(x, c_noise, y)``.
    """
    if isinstance(spec, str):
        spec = preset_config(spec)
    try:
        cfg = SongUNetConfig.from_dict(dict(spec))
    except (TypeError, ValueError) as err:
        raise GtasrError(f"invalid network config: {err}") from err
    return SongUNetSR(cfg)


def state_shapes(spec: str | Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the state dict of :func:`build_network` ``(spec)``.

    The network is built on the ``meta`` device, so no memory is allocated for it: a
    file's tensors can be checked against the architecture its metadata claims before
    that architecture is built for real.
    """
    with torch.device("meta"):
        backbone = build_network(spec)
    return {name: tuple(tensor.shape) for name, tensor in backbone.state_dict().items()}
