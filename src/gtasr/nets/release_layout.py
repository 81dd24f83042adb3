"""The authors' tensor names for gtasr's backbone: settings from shapes, names both ways.

The authors' ``EDMUNet`` around a ``SongUNet`` computes the same function as
:class:`~gtasr.nets.songunet.SongUNetSR` under other tensor names, with fixed buffers
beside the parameters (the 2x2 resampling filters and the Swin relative position
indices); its Swin blocks normalise with exactly 32 groups at any width, gtasr's
``swin_norm_groups``. Their files store no settings, so :func:`infer_network` reads them
from tensor names and shapes (``res_con``, gtasr's ``lr_skip``, adds no tensor and is
the caller's to give); :func:`map_state_dict` and :func:`release_state_dict` rename.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from gtasr.errors import GtasrError

TRAINING_LR_SIZE = 64
"""LR size the release trained at (its module names carry it); its tests pad to multiples of it."""

SWIN_NORM_GROUPS = 32
"""The release's Swin normalisation: GroupNorm with 32 groups, whatever the width."""

IGNORED_KEYS = frozenset({"weight_lap"})
"""Tensors the GTASR training code registers on the network that its forward pass never uses."""

PREFIX = "model."
DDP_PREFIX = "module."
_RESAMPLE_FILTER = torch.full((1, 1, 2, 2), 0.25)
_CONV_IN = re.compile(r"^model\.enc\.(\d+)x\1_conv\.weight$")
_ENC_BLOCK = re.compile(r"^model\.enc\.(\d+)x\1_(down|block(\d+))\.")

# gtasr name fragment inside a residual block -> the release's, first match wins.
_BLOCK_NAMES = (
    ("attention.embed.", "swin_layer.patch_embed.proj."),
    ("attention.unembed.", "swin_layer.patch_unembed.proj."),
    ("attention.conv.", "swin_layer.conv."),
    (
        "attention.block.attn.relative_position_bias",
        "swin_layer.blocks.0.attn.relative_position_bias_table",
    ),
    ("attention.block.fc1.", "swin_layer.blocks.0.mlp.fc1."),
    ("attention.block.fc2.", "swin_layer.blocks.0.mlp.fc2."),
    ("attention.block.", "swin_layer.blocks.0."),
)


def looks_like_release(keys: Mapping[str, Any] | list[str]) -> bool:
    """True when tensor names are the release network's (``model.enc.<R>x<R>_conv.weight``...)."""
    names = {k.removeprefix(DDP_PREFIX) for k in keys}
    return "model.map_layer0.weight" in names and any(_CONV_IN.match(k) for k in names)


def _shape(
    state: Mapping[str, Tensor], name: str, source: str | os.PathLike[str]
) -> tuple[int, ...]:
    if name not in state:
        raise GtasrError(f"{source}: not a GTASR/CTMSR network: tensor '{name}' is missing")
    return tuple(state[name].shape)


def infer_network(
    state: Mapping[str, Tensor], source: str | os.PathLike[str], *, res_con: bool = False
) -> dict[str, Any]:
    """The gtasr backbone config of a release state dict, read from tensor names and shapes."""
    conv_in = next((m for m in map(_CONV_IN.match, state) if m), None)
    if conv_in is None:
        raise GtasrError(f"{source}: not a GTASR/CTMSR network: no model.enc.<R>x<R>_conv.weight")
    resolution = int(conv_in.group(1))
    base, in_channels = _shape(state, conv_in.group(0), source)[:2]
    if in_channels % 17:
        raise GtasrError(
            f"{source}: tensor '{conv_in.group(0)}' takes {in_channels} channels; gtasr runs "
            "only the release's x4 layout (17 per colour: pixel-unshuffled state and LR image)"
        )
    levels: dict[int, set[int]] = {}
    for match in filter(None, map(_ENC_BLOCK.match, state)):
        blocks = levels.setdefault(int(match.group(1)), set())
        if match.group(3) is not None:
            blocks.add(int(match.group(3)))
    resolutions = sorted(levels, reverse=True)
    if not resolutions or resolutions != [resolution >> i for i in range(len(resolutions))]:
        raise GtasrError(
            f"{source}: encoder resolutions {resolutions} do not halve from {resolution}"
        )
    mults, attention = [], []
    for level, res in enumerate(resolutions):
        block = f"model.enc.{res}x{res}_block0"
        width = _shape(state, f"{block}.conv1.weight", source)[0]
        if width % base:
            raise GtasrError(f"{source}: tensor '{block}.conv1.weight' is not a multiple of {base}")
        mults.append(width // base)
        if f"{block}.swin_layer.patch_embed.proj.weight" in state:
            attention.append(level)
    emb_channels, noise_channels = _shape(state, "model.map_layer0.weight", source)
    if noise_channels != base:
        raise GtasrError(
            f"{source}: tensor 'model.map_layer0.weight' embeds the noise in {noise_channels} "
            f"channels; gtasr supports the release's {base} (channel_mult_noise 1)"
        )
    swin = f"model.dec.{resolutions[-1]}x{resolutions[-1]}_in0.swin_layer"
    swin_dim = _shape(state, f"{swin}.patch_embed.proj.weight", source)[0]
    table, heads = _shape(state, f"{swin}.blocks.0.attn.relative_position_bias_table", source)
    window = (math.isqrt(table) + 1) // 2
    hidden = _shape(state, f"{swin}.blocks.0.mlp.fc1.weight", source)[0]
    head = f"model.dec.{resolution}x{resolution}_aux_conv.weight"
    nearest = "model.conv_up1.weight" in state
    return {
        "base_channels": base,
        "channel_mults": mults,
        "blocks_per_level": len(levels[resolution]),
        "attention_levels": attention,
        "dropout": 0.13,
        "emb_channels": emb_channels,
        "swin_dim": swin_dim,
        "swin_heads": heads,
        "swin_window": window,
        "swin_mlp_ratio": hidden / swin_dim,
        "swin_qkv_bias": f"{swin}.blocks.0.attn.qkv.bias" in state,
        "head_channels": _shape(state, "model.conv_up1.weight" if nearest else head, source)[0],
        "image_channels": in_channels // 17,
        "lr_skip": bool(res_con),
        "swin_norm_groups": SWIN_NORM_GROUPS,
        "upsampler": "nearest" if nearest else "pixelshuffle",
    }


def _level_names(network: Mapping[str, Any], resolution: int) -> tuple[list[str], list[str]]:
    """Release module names of gtasr's ``encoder`` and ``decoder`` blocks, in gtasr's order."""
    levels = len(network["channel_mults"])
    blocks = int(network["blocks_per_level"])
    encoder, decoder = [], []
    for level in range(levels):
        res = resolution >> level
        if level > 0:
            encoder.append(f"enc.{res}x{res}_down")
        encoder += [f"enc.{res}x{res}_block{i}" for i in range(blocks)]
    for level in reversed(range(levels)):
        res = resolution >> level
        start = ["in0", "in1"] if level == levels - 1 else ["up"]
        decoder += [f"dec.{res}x{res}_{name}" for name in start]
        decoder += [f"dec.{res}x{res}_block{i}" for i in range(blocks + 1)]
    return encoder, decoder


def release_names(
    gtasr_names: list[str], network: Mapping[str, Any], resolution: int
) -> dict[str, str]:
    """gtasr backbone tensor name -> the release's name for the same tensor."""
    encoder, decoder = _level_names(network, resolution)
    top = {
        "map0": "map_layer0",
        "map1": "map_layer1",
        "conv_in": f"enc.{resolution}x{resolution}_conv",
        "head_norm": f"dec.{resolution}x{resolution}_aux_norm",
        "head_conv": f"dec.{resolution}x{resolution}_aux_conv",
        "up1": "conv_up1",
        "up2": "conv_up2",
        "conv_out": "conv_last",
    }
    names = {}
    for name in gtasr_names:
        first, rest = name.split(".", 1)
        if first in top:
            names[name] = f"{PREFIX}{top[first]}.{rest}"
            continue
        index, inner = rest.split(".", 1)
        module = (encoder if first == "encoder" else decoder)[int(index)]
        for ours, theirs in _BLOCK_NAMES:
            if inner.startswith(ours):
                inner = theirs + inner[len(ours) :]
                break
        names[name] = f"{PREFIX}{module}.{inner}"
    return names


def constant_buffers(names: Mapping[str, str], window: int) -> dict[str, Tensor]:
    """The release's fixed buffers (name -> value) beside the parameters named in ``names``.

    Resampling blocks hold their 2x2 box filter (the release's ``[1, 1]``,
    which gtasr computes as average pooling and nearest upsampling); Swin
    blocks hold the relative position index of their window.
    """
    from gtasr.nets.swin import relative_position_index

    index = relative_position_index(window).reshape(window * window, window * window)
    constants = {}
    for name in names.values():
        if re.search(r"_(down|up)\.conv0\.weight$", name):
            block = name[: -len(".conv0.weight")]
            constants[f"{block}.conv0.resample_filter"] = _RESAMPLE_FILTER
            constants[f"{block}.skip.resample_filter"] = _RESAMPLE_FILTER
        elif name.endswith("attn.relative_position_bias_table"):
            constants[name.replace("_bias_table", "_index")] = index
    return constants


def release_state_dict(
    backbone: torch.nn.Module, resolution: int = TRAINING_LR_SIZE
) -> dict[str, Tensor]:
    """A gtasr backbone's weights under the release's names, its fixed buffers included.

    The inverse of :func:`map_state_dict`: what the authors' code would save
    for this network (``resolution`` is the LR size in its module names).
    """
    state = backbone.state_dict()
    names = release_names(list(state), backbone.config, resolution)
    out = {names[name]: tensor.detach().clone() for name, tensor in state.items()}
    for name, value in constant_buffers(names, backbone.config["swin_window"]).items():
        out[name] = value.to(torch.float16) if value.is_floating_point() else value.clone()
    return out


def map_state_dict(
    state: Mapping[str, Tensor], network: Mapping[str, Any], source: str | os.PathLike[str]
) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """Rename a release state dict to gtasr's names, checking every tensor against the network.

    Each stored tensor must be a parameter of the inferred network with the
    same shape, or one of the release's constant buffers with the value the
    network implies; the first that is neither is named in the error.
    """
    from gtasr.nets import state_shapes

    resolution = int(next(m for m in map(_CONV_IN.match, state) if m).group(1))
    expected = state_shapes(dict(network))
    names = release_names(list(expected), network, resolution)
    by_release = {theirs: ours for ours, theirs in names.items()}
    constants = constant_buffers(names, int(network["swin_window"]))
    mapped: dict[str, Tensor] = {}
    ignored = []
    for name, tensor in state.items():
        if name in constants:
            _check_constant(name, tensor, constants[name], source)
        elif name in by_release:
            ours = by_release[name]
            if not tensor.is_floating_point():  # casting integers would change the network
                raise GtasrError(f"{source}: tensor '{name}' holds {tensor.dtype}, not floats")
            if tuple(tensor.shape) != expected[ours]:
                raise GtasrError(
                    f"{source}: tensor '{name}' has shape {tuple(tensor.shape)}, but the network "
                    f"read from the other tensors needs {expected[ours]}"
                )
            mapped[ours] = tensor
        elif name in IGNORED_KEYS:
            ignored.append(name)
        else:
            raise GtasrError(
                f"{source}: tensor '{name}' is not part of the GTASR/CTMSR network read from "
                "the other tensors"
            )
    for theirs in list(names.values()) + list(constants):
        if theirs not in state:
            raise GtasrError(f"{source}: tensor '{theirs}' is missing")
    return mapped, tuple(ignored)


def _check_constant(
    name: str, tensor: Tensor, expected: Tensor, source: str | os.PathLike[str]
) -> None:
    if tuple(tensor.shape) != tuple(expected.shape) or not torch.equal(
        tensor.to(expected.dtype), expected
    ):
        raise GtasrError(
            f"{source}: tensor '{name}' does not hold what gtasr's network computes with "
            f"(shape {tuple(tensor.shape)}; expected {tuple(expected.shape)} of fixed values)"
        )
