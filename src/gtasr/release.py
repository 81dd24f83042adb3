"""The authors' released checkpoints (GTASR, and CTMSR on which it builds), read into gtasr.

The release trains and tests with BasicSR, whose checkpoints are pickles of
``{"params": state_dict, "params_ema": state_dict}`` (either may be absent;
keys may carry DDP's ``module.`` prefix). The network is the authors'
``EDMUNet`` around a ``SongUNet``: the same function as gtasr's backbone
under other tensor names (``model.enc.64x64_block0.conv0.weight`` and so on,
buffers included), with one difference gtasr expresses as a network option:
its Swin blocks normalise with exactly 32 groups at any width.

Nothing about the architecture is stored in the file, so, as spandrel does,
every setting is read from tensor names and shapes (:func:`infer_network`):
base width, channel multipliers, blocks per level, attention levels, the
Swin block's width, heads and window, and the head type. ``res_con`` (gtasr's
``lr_skip``) adds no tensor, so it cannot be read: it is off, as in every
published model, unless the caller says otherwise.

Reading is safe: ``torch.load(weights_only=True)`` only, which refuses any
pickle that would import or call anything but tensor rebuilding, before it
runs. A file of another network is refused with the name of the first tensor
that does not fit.

The test-time conventions of the release differ from gtasr's and are kept
for its models (chosen by :data:`FAMILY`, also stored in converted files):
the LR image is padded to a multiple of :data:`TRAINING_LR_SIZE` and its
bicubic upsampling is not clamped.
"""

from __future__ import annotations

import math
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from gtasr.errors import GtasrError

if TYPE_CHECKING:
    from gtasr.checkpoint import CheckpointInfo

FAMILY = "release"
"""The ``family`` of models from the authors' checkpoints (gtasr's own are ``"gtasr"``)."""

TRAINING_LR_SIZE = 64
"""LR size the release trained at; its test pipeline pads images to multiples of it."""

WEIGHT_KEYS = {"ema": "params_ema", "raw": "params"}
"""``--weights`` choices and the BasicSR keys they select (the release tests with EMA)."""

SWIN_NORM_GROUPS = 32
"""The release's Swin normalisation: GroupNorm with 32 groups, whatever the width."""

IGNORED_KEYS = frozenset({"weight_lap"})
"""Tensors the GTASR training code registers on the network that its forward pass never uses."""

PRECOND = {"sigma_data": 0.5, "sigma_scale": 0.1, "noise_offset": 0.002}
"""The release's EDMUNet constants (sigma rescaled by 0.1, c_noise = log(sigma + 0.002) / 4)."""

PREFIX = "model."
_DDP_PREFIX = "module."
_RESAMPLE_FILTER = torch.full((1, 1, 2, 2), 0.25)
_CONV_IN = re.compile(r"^model\.enc\.(\d+)x\1_conv\.weight$")
_ENC_BLOCK = re.compile(r"^model\.enc\.(\d+)x\1_(down|block(\d+))\.")
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")

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


@dataclass(frozen=True)
class ReleaseWeights:
    """One state dict of a release file, renamed for gtasr's backbone."""

    state_dict: dict[str, Tensor]
    """gtasr names -> tensors (the release's fixed buffers are checked, then dropped)."""
    network: dict[str, Any]
    """The backbone config inferred from the tensors (``build_network`` accepts it)."""
    key: str
    """Where in the file the weights were: ``params_ema``, ``params`` or ``(top level)``."""
    ignored: tuple[str, ...]
    """Names of stored tensors the network does not use (see :data:`IGNORED_KEYS`)."""


def is_torch_file(path: str | os.PathLike[str]) -> bool:
    """True for files written by ``torch.save`` (a zip archive or a legacy pickle)."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def is_release_file(path: str | os.PathLike[str]) -> bool:
    """True for files to read as release checkpoints: any ``torch.save`` file, or a
    safetensors file without gtasr metadata whose tensors carry the release's names."""
    if is_torch_file(path):
        return True
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            names = list(handle.keys())
    except Exception:  # not safetensors either: the gtasr reader reports it
        return False
    return "gtasr.format" not in metadata and looks_like_release(names)


def looks_like_release(keys: Mapping[str, Any] | list[str]) -> bool:
    """True when tensor names are the release network's (``model.enc.<R>x<R>_conv.weight``...)."""
    names = {_strip(k) for k in keys}
    return "model.map_layer0.weight" in names and any(_CONV_IN.match(k) for k in names)


def _strip(key: str) -> str:
    return key[len(_DDP_PREFIX) :] if key.startswith(_DDP_PREFIX) else key


def load_torch_file(path: Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, memory-mapped where the format allows.

    A pickle that would import or call anything besides rebuilding tensors is
    refused before anything runs; the error names the file in one line.
    """
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = _UNSAFE_GLOBAL.search(str(error))
        what = f"call {found.group(1)}" if found else "run instructions other than tensor loading"
        raise GtasrError(
            f"{path}: refused: unpickling it would {what}; only plain tensors are loaded"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        lines = str(error).strip().splitlines() or [type(error).__name__]
        raise GtasrError(f"{path}: cannot read as a PyTorch checkpoint ({lines[0]})") from None


def select_weights(
    data: Any, weights: str, source: str | os.PathLike[str]
) -> tuple[dict[str, Tensor], str]:
    """The state dict that ``weights`` ("ema" or "raw") names in a loaded BasicSR file."""
    if weights not in WEIGHT_KEYS:
        raise GtasrError(f"--weights must be ema or raw, not {weights!r}")
    if not isinstance(data, Mapping):
        raise GtasrError(f"{source}: holds a {type(data).__name__}, not a dict of weights")
    present = [key for key in WEIGHT_KEYS.values() if isinstance(data.get(key), Mapping)]
    if present:
        key = WEIGHT_KEYS[weights]
        if key not in present:
            raise GtasrError(f"{source}: has no '{key}' weights (it holds {', '.join(present)})")
        state = data[key]
    else:
        key, state = "(top level)", data
    tensors = {}
    for name, value in state.items():
        if not isinstance(value, Tensor):
            raise GtasrError(f"{source}: entry {name!r} of '{key}' is not a tensor")
        tensors[_strip(str(name))] = value
    if not looks_like_release(tensors):
        first = next(iter(tensors), "(none)")
        raise GtasrError(
            f"{source}: not a GTASR/CTMSR network: its first tensor '{first}' is not one of "
            "the release's (model.map_layer0.weight, model.enc.<R>x<R>_conv.weight, ...)"
        )
    return tensors, key


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


def map_state_dict(
    state: Mapping[str, Tensor], network: Mapping[str, Any], source: str | os.PathLike[str]
) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """Rename a release state dict to gtasr's names, checking every tensor against the network.

    Each stored tensor must be a parameter of the inferred network with the
    same shape, or one of the release's constant buffers with the value the
    network implies; the first that is neither is named in the error.
    """
    from gtasr.nets import build_network

    resolution = int(next(m for m in map(_CONV_IN.match, state) if m).group(1))
    with torch.device("meta"):
        backbone = build_network(dict(network))
    expected = {name: tuple(t.shape) for name, t in backbone.state_dict().items()}
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


def read_release(
    path: str | os.PathLike[str], weights: str = "ema", *, res_con: bool = False
) -> ReleaseWeights:
    """Read, check and rename one state dict of a release checkpoint (``.pth`` or safetensors)."""
    source = Path(path)
    state, key = select_weights(_read(source), weights, source)
    return release_weights(state, key=key, source=source, res_con=res_con)


def release_weights(
    state: Mapping[str, Tensor],
    *,
    key: str = "(top level)",
    source: str | os.PathLike[str] = "state dict",
    res_con: bool = False,
) -> ReleaseWeights:
    """Check and rename a release state dict (without DDP prefixes) already in memory."""
    network = infer_network(state, source, res_con=res_con)
    try:
        from gtasr.nets.songunet import SongUNetConfig

        SongUNetConfig.from_dict(dict(network))
    except (TypeError, ValueError) as error:
        raise GtasrError(
            f"{source}: settings read from the tensors are not usable ({error})"
        ) from None
    mapped, ignored = map_state_dict(state, network, source)
    return ReleaseWeights(state_dict=mapped, network=network, key=key, ignored=ignored)


def _read(source: str | os.PathLike[str]) -> Any:
    if not source.is_file():
        raise GtasrError(f"{source}: model file not found")
    if is_torch_file(source):
        return load_torch_file(source)
    from safetensors.torch import load_file

    try:
        return load_file(str(source), device="cpu")
    except Exception as error:  # safetensors raises several types for damaged files
        raise GtasrError(f"{source}: cannot read ({error})") from None


def read_release_model(
    path: Path, weights: str = "ema", *, res_con: bool = False
) -> tuple[dict[str, Tensor], CheckpointInfo]:
    """:func:`read_release` as the model-file reader returns it: tensors and a description."""
    from gtasr.checkpoint import CheckpointInfo

    found = read_release(path, weights, res_con=res_con)
    extra = {"family": FAMILY, "source": path.name, "source_key": found.key}
    if found.ignored:
        extra["ignored"] = ", ".join(found.ignored)
    info = CheckpointInfo(
        path=path,
        network=found.network,
        precond=dict(PRECOND),
        scale=4,
        stage=0,
        iteration=0,
        weights=weights,
        extra=extra,
    )
    return found.state_dict, info


def convert(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    weights: str | None = None,
    dtype: str = "fp32",
    res_con: bool = False,
) -> CheckpointInfo:
    """Write a model file gtasr reads (typically a release ``.pth``) as a gtasr model file.

    The target records the family, the settings read from the tensors, the
    source's file name, SHA-256 and the key the weights came from; tensors are
    stored in ``dtype`` (fp32, bf16 or fp16; loading computes in float32 again).
    Written atomically. Returns the description of what was written.
    """
    from gtasr.checkpoint import read_info, read_weights, save_described
    from gtasr.fileio import file_sha256
    from gtasr.infer.backends import PRECISIONS

    if dtype not in PRECISIONS:
        raise GtasrError(f"--dtype must be one of {', '.join(PRECISIONS)}, not {dtype!r}")
    state, info = read_weights(source, weights, res_con=res_con)
    stored = {
        name: tensor.to(PRECISIONS[dtype]) if tensor.is_floating_point() else tensor
        for name, tensor in state.items()
    }
    extra = dict(info.extra)
    extra.update(source=Path(source).name, source_sha256=file_sha256(source), dtype=dtype)
    save_described(target, stored, replace(info, extra=extra))
    return read_info(target)
