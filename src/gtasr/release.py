"""The authors' released checkpoints (GTASR, and CTMSR on which it builds), read into gtasr.

The release's BasicSR checkpoints are pickles of ``{"params": ..., "params_ema": ...}``
(either may be absent; keys may carry DDP's ``module.`` prefix) holding gtasr's backbone
under the authors' names (:mod:`gtasr.nets.release_layout`). They are read with
``torch.load(weights_only=True)`` only, and their models (:data:`FAMILY`) keep the
release's test-time conventions (:class:`gtasr.infer.upscaler.Conventions`);
docs/authors-weights.md says what is read and what is identical.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gtasr.choices import WEIGHT_KEYS
from gtasr.errors import GtasrError
from gtasr.nets.release_layout import (
    DDP_PREFIX,
    infer_network,
    looks_like_release,
    map_state_dict,
)

FAMILY = "release"
"""The ``family`` of models from the authors' checkpoints (gtasr's own are ``"gtasr"``)."""


PRECOND = {"sigma_data": 0.5, "sigma_scale": 0.1, "noise_offset": 0.002}
"""The release's EDMUNet constants (sigma rescaled by 0.1, c_noise = log(sigma + 0.002) / 4)."""

_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


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
    """Names of stored tensors the network does not use (see ``release_layout.IGNORED_KEYS``)."""


def is_torch_file(path: str | os.PathLike[str]) -> bool:
    """True for files written by ``torch.save`` (a zip archive or a legacy pickle).

    A safetensors file (an 8-byte header length, then its JSON header) is never one, even
    when its length's first byte is 0x80, the pickle opcode that starts a legacy file.
    """
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return False
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
        if value.is_meta or value.layout != torch.strided or value.is_quantized:
            kind = "meta" if value.is_meta else "quantized" if value.is_quantized else "sparse"
            raise GtasrError(f"{source}: tensor {name!r} is a {kind} tensor, not stored weights")
        tensors[str(name).removeprefix(DDP_PREFIX)] = value
    if not looks_like_release(tensors):
        first = next(iter(tensors), "(none)")
        raise GtasrError(
            f"{source}: not a GTASR/CTMSR network: its first tensor '{first}' is not one of "
            "the release's (model.map_layer0.weight, model.enc.<R>x<R>_conv.weight, ...)"
        )
    return tensors, key


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
