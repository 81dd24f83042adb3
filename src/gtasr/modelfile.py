"""Model files: safetensors weights that describe their own architecture.

A gtasr model file holds the backbone's tensors plus string metadata (as
safetensors allows) with everything needed to rebuild it, so loading needs no
config file::

    gtasr.format     "1"
    network          JSON of the backbone's config (``build_network`` accepts it)
    precond          JSON of the consistency-model constants
    scale            "4"
    stage            "1" or "2"
    iteration        training iteration that produced the weights
    weights          "ema" or "raw"

plus free-form ``extra.*`` strings, and next to the backbone's tensors one of
:data:`CONVENTION_TENSORS` for each switch of the model's output that is on and leaves no
trace in the weights, for loaders that see only tensors (spandrel).

:func:`read_weights` is where every model file is opened, gtasr's and the authors'
(:mod:`gtasr.release`) alike. Nothing a file says is trusted before it is checked
(docs/failure-behaviour.md): metadata by :func:`metadata_problem`, tensor names and
shapes by :func:`check_tensors` before the network is built, weights for NaN and infinity.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gtasr import release
from gtasr.errors import GtasrError
from gtasr.fileio import atomic_path

FORMAT_VERSION = "1"
METADATA_KEYS = ("gtasr.format", "network", "precond", "scale", "stage", "iteration", "weights")
"""Every metadata key of a model file besides the free-form ``extra.*`` ones."""
PRECOND_KEYS = ("sigma_data", "sigma_scale", "noise_offset")
PRECOND_FLAGS = ("lr_anchor",)
"""Optional true/false entries of 'precond', written only when on."""
SCALE = 4
STAGES = (0, 1, 2)
"""Training stage of the weights; 0 for weights gtasr did not train (the authors')."""
WEIGHT_KINDS = ("ema", "raw")
SWITCHES = ("lr_skip", "lr_anchor")
"""Switches of the model's output that leave no trace in its weights."""
CONVENTION_TENSORS = tuple(f"gtasr.{switch}" for switch in SWITCHES)
"""Tensor names of the switches repeated from the metadata: present (1.0) when on."""


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself."""

    path: Path
    network: dict[str, Any]
    precond: dict[str, float]
    scale: int
    stage: int
    iteration: int
    weights: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """``"gtasr"``, or ``"release"`` for the authors' weights (their test-time conventions)."""
        return self.extra.get("family", "gtasr")


def save_model(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    *,
    network: Mapping[str, Any],
    precond: Mapping[str, float],
    stage: int,
    iteration: int,
    weights: str,
    scale: int = 4,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Write backbone tensors and self-describing metadata to ``path`` atomically."""
    from safetensors.torch import save_file

    if weights not in ("ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', not {weights!r}")
    metadata = {
        "gtasr.format": FORMAT_VERSION,
        "network": json.dumps(dict(network), sort_keys=True),
        "precond": json.dumps(dict(precond), sort_keys=True),
        "scale": str(int(scale)),
        "stage": str(int(stage)),
        "iteration": str(int(iteration)),
        "weights": weights,
    }
    for key, value in (extra or {}).items():
        metadata[f"extra.{key}"] = str(value)
    tensors = {
        k: v.detach().to("cpu").contiguous()
        for k, v in state_dict.items()
        if k not in CONVENTION_TENSORS
    }
    tensors.update(convention_tensors(network, precond))
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def stated_switches(network: Mapping[str, Any], precond: Mapping[str, Any]) -> dict[str, bool]:
    """:data:`SWITCHES` as a model's metadata states them (absent: off)."""
    return {
        "lr_skip": bool(network.get("lr_skip", False)),
        "lr_anchor": bool(precond.get("lr_anchor", False)),
    }


def convention_tensors(
    network: Mapping[str, Any], precond: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """The :data:`CONVENTION_TENSORS` of a model with this network and preconditioning: one
    for each switch that is on."""
    return {
        f"gtasr.{switch}": torch.tensor([1.0])
        for switch, on in stated_switches(network, precond).items()
        if on
    }


def split_conventions(
    state: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, bool]]:
    """(backbone tensors, every switch: on where its convention tensor holds a non-zero value)
    of a state dict."""
    tensors = {k: v for k, v in state.items() if k not in CONVENTION_TENSORS}
    switches = {
        switch: name in state and bool(state[name].reshape(-1)[0] != 0)
        for switch, name in zip(SWITCHES, CONVENTION_TENSORS, strict=True)
    }
    return tensors, switches


def save_described(
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], info: ModelInfo
) -> None:
    """Write tensors as a model file that ``info`` describes (its ``extra`` included)."""
    save_model(path, state_dict, **{k: v for k, v in vars(info).items() if k != "path"})


def read_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Read and check a model file's metadata without loading its tensors."""
    with _opened(path) as handle:
        return _info_from(Path(path), handle.metadata() or {})


@contextlib.contextmanager
def _opened(path: str | os.PathLike[str]) -> Iterator[Any]:
    """``safe_open`` of a model file; a missing or unreadable file is a one-line error."""
    from safetensors import safe_open

    file = Path(path)
    if not file.is_file():
        raise GtasrError(f"{file}: model file not found")
    try:
        handle = safe_open(str(file), framework="pt")
    except Exception as error:  # safetensors raises several types for bad headers
        raise GtasrError(f"{file}: not a safetensors model file ({error})") from error
    with handle:
        yield handle


def _info_from(file: Path, meta: Mapping[str, str]) -> ModelInfo:
    """The checked description of a gtasr file from its metadata."""
    if meta.get("gtasr.format") != FORMAT_VERSION:
        raise GtasrError(f"{file}: not a gtasr model file (no 'gtasr.format' metadata)")
    unknown = sorted(k for k in meta if k not in METADATA_KEYS and not k.startswith("extra."))
    if unknown:
        raise GtasrError(f"{file}: unknown metadata key '{unknown[0]}'")
    try:
        info = ModelInfo(
            path=file,
            network=metadata_json(meta, "network"),
            precond=metadata_json(meta, "precond"),
            scale=int(meta["scale"]),
            stage=int(meta["stage"]),
            iteration=int(meta["iteration"]),
            weights=meta["weights"],
            extra={k[len("extra.") :]: v for k, v in meta.items() if k.startswith("extra.")},
        )
    except (KeyError, ValueError, OverflowError) as error:
        raise GtasrError(f"{file}: damaged gtasr metadata ({error})") from error
    problem = metadata_problem(info)
    if problem:
        raise GtasrError(f"{file}: bad metadata: {problem}")
    return info


MAX_METADATA_CHARS = 65536
"""Longest JSON value of a model file's metadata (a real one is a few hundred characters)."""
PRECOND_RANGE = (1e-6, 1e3)
"""Bounds of each preconditioning number: the release uses 0.5, 0.1 and 0.002; values far
outside overflow the network's scalings (a sigma_data of 1e308 squared is infinite)."""


def metadata_json(meta: Mapping[str, str], key: str) -> Any:
    """Parse one JSON metadata value; bounded in size, and nesting too deep for Python's
    parser (a recursion error) is damage like any other."""
    text = meta[key]
    if len(text) > MAX_METADATA_CHARS:
        raise ValueError(f"'{key}' is {len(text)} characters long, over {MAX_METADATA_CHARS}")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"'{key}' is nested too deeply") from None


def metadata_problem(info: ModelInfo) -> str | None:
    """What is wrong with a description's values, or None when each is of its kind and range."""
    from gtasr.nets.songunet import SongUNetConfig

    if not isinstance(info.network, dict):
        return "'network' is not a mapping"
    try:
        SongUNetConfig.from_dict(info.network)
    except (TypeError, ValueError) as error:
        return f"'network': {error}"
    precond = info.precond
    if not isinstance(precond, dict) or set(precond) - set(PRECOND_FLAGS) != set(PRECOND_KEYS):
        return (
            f"'precond' must have exactly the keys {', '.join(PRECOND_KEYS)} "
            f"(and optionally {', '.join(PRECOND_FLAGS)})"
        )
    flags = {key: precond[key] for key in PRECOND_FLAGS if key in precond}
    if any(not isinstance(value, bool) for value in flags.values()):
        return f"'precond' {', '.join(PRECOND_FLAGS)} must be true or false"
    for key, value in precond.items():
        if key in flags:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"'precond' {key} is not a number"
        low, high = PRECOND_RANGE
        if isinstance(value, int) and not low <= value <= high:  # float() of 10**400 fails
            return f"'precond' {key} must be within {low:g}..{high:g}"
        if not (math.isfinite(value) and low <= value <= high):
            return f"'precond' {key} must be within {low:g}..{high:g}, not {value}"
    if info.scale != SCALE:
        return f"'scale' {info.scale}: gtasr models are x{SCALE}"
    if info.stage not in STAGES:
        return f"'stage' must be one of {', '.join(map(str, STAGES))}, not {info.stage}"
    if info.iteration < 0:
        return f"'iteration' must not be negative, not {info.iteration}"
    if info.weights not in WEIGHT_KINDS:
        return f"'weights' must be {' or '.join(WEIGHT_KINDS)}, not {info.weights!r}"
    if info.family not in ("gtasr", release.FAMILY):
        return f"'extra.family' {info.family!r} is not a model family gtasr knows"
    return None


def check_tensors(info: ModelInfo) -> None:
    """Compare the tensors in the file's header with the network its metadata describes."""
    with _opened(info.path) as handle:
        _check_header(info, handle)


def _check_header(info: ModelInfo, handle: Any) -> None:
    """The header check of :func:`check_tensors` on an open file.

    The network is built on the ``meta`` device (no memory), so a small file whose
    metadata claims a huge network is refused without building it. Names, shapes and
    floating-point types must all match; the error names the first tensor that does not.
    """
    from gtasr.nets import state_shapes

    expected = state_shapes(info.network)
    try:
        stored = {name: handle.get_slice(name) for name in handle.keys()}  # noqa: SIM118
        shapes = {name: tuple(part.get_shape()) for name, part in stored.items()}
        dtypes = {name: part.get_dtype() for name, part in stored.items()}
    except Exception as error:  # safetensors raises several types for damaged headers
        raise GtasrError(f"{info.path}: damaged tensor header ({error})") from error
    missing = [name for name in expected if name not in shapes]
    if missing:
        raise GtasrError(f"{info.path}: tensor '{missing[0]}' of the described network is missing")
    for name, shape in shapes.items():
        if name in CONVENTION_TENSORS and shape == (1,) and dtypes[name] in FLOAT_DTYPES:
            continue
        if name not in expected:
            raise GtasrError(f"{info.path}: tensor '{name}' is not part of the described network")
        if shape != expected[name]:
            raise GtasrError(
                f"{info.path}: tensor '{name}' has shape {shape}, but the network described "
                f"by the metadata needs {expected[name]}"
            )
        if dtypes[name] not in FLOAT_DTYPES:
            raise GtasrError(f"{info.path}: tensor '{name}' holds {dtypes[name]}, not floats")


FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")
"""safetensors' names of the floating-point types weights may be stored in."""


_EXPONENT_BITS = {
    torch.float64: (torch.int64, 0x7FF0000000000000),
    torch.float32: (torch.int32, 0x7F800000),
    torch.float16: (torch.int16, 0x7C00),
    torch.bfloat16: (torch.int16, 0x7F80),
}
"""Per float type: the integer type of its width and the mask of its exponent field."""


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether no value of a float tensor is NaN or infinite (all exponent bits set).

    On the CPU, read through a NumPy view of the bits: one pass without PyTorch's
    per-operation thread pool overhead, which dominates for the hundreds of small tensors
    of a model file.
    """
    if tensor.device.type != "cpu":
        return bool(torch.isfinite(tensor).all())
    int_type, mask = _EXPONENT_BITS[tensor.dtype]
    bits = tensor.detach().contiguous().view(int_type).numpy()
    return not bool(np.any((bits & mask) == mask))


def refuse_nonfinite(tensors: Iterable[tuple[str, torch.Tensor]], source: object) -> None:
    """Raise naming the first tensor with a NaN or infinite value (a diverged training run)."""
    for name, tensor in tensors:
        if tensor.is_floating_point() and not all_finite(tensor):
            raise GtasrError(f"{source}: tensor '{name}' holds NaN or infinite values")


def verify_model_file(path: str | os.PathLike[str]) -> ModelInfo:
    """Every check :func:`read_weights` makes on a gtasr file, reading one tensor at a time."""
    return _read_gtasr_file(Path(path), None, keep=False)[1]


def read_weights(
    path: str | os.PathLike[str], weights: str | None = None, *, res_con: bool = False
) -> tuple[dict[str, torch.Tensor], ModelInfo]:
    """Backbone tensors (gtasr names) and description of any model file gtasr reads.

    ``weights`` ("ema" or "raw") picks ``params_ema`` (the default) or
    ``params`` of a release checkpoint; a gtasr file holds one kind, so there
    it may only name that kind. ``res_con`` applies to release checkpoints only
    (their files cannot tell it). Every check of the module docstring is made; a gtasr
    file is opened once for all of them.
    """
    file = Path(path)
    if not (file.is_file() and release.is_torch_file(file)):
        with _opened(file) as handle:
            meta = handle.metadata() or {}
            if "gtasr.format" in meta or not release.looks_like_release(list(handle.keys())):
                return _read_open_gtasr_file(file, handle, meta, weights, keep=True)
    state, info = _read_authors_file(file, weights or "ema", res_con=res_con)
    refuse_nonfinite(state.items(), file)
    return state, info


def _read_gtasr_file(
    file: Path, weights: str | None, *, keep: bool
) -> tuple[dict[str, torch.Tensor], ModelInfo]:
    """:func:`_read_open_gtasr_file` on a file it opens."""
    with _opened(file) as handle:
        return _read_open_gtasr_file(file, handle, handle.metadata() or {}, weights, keep=keep)


def _read_open_gtasr_file(
    file: Path, handle: Any, meta: Mapping[str, str], weights: str | None, *, keep: bool
) -> tuple[dict[str, torch.Tensor], ModelInfo]:
    """Metadata, header and every tensor of an open gtasr file, checked.

    With ``keep`` false each tensor is dropped once checked (``gtasr info``: memory for one
    tensor at a time); the returned dict then holds nothing.
    """
    info = _info_from(file, meta)
    if weights is not None and weights != info.weights:
        raise GtasrError(f"{file}: holds {info.weights} weights only, not {weights}")
    _check_header(info, handle)
    state: dict[str, torch.Tensor] = {}
    conventions: dict[str, torch.Tensor] = {}
    try:
        for name in handle.keys():  # noqa: SIM118
            tensor = handle.get_tensor(name)
            refuse_nonfinite([(name, tensor)], file)
            if name in CONVENTION_TENSORS:
                conventions[name] = tensor
            elif keep:
                state[name] = tensor
    except GtasrError:
        raise
    except Exception as error:  # safetensors raises several types for damaged data
        raise GtasrError(f"{file}: cannot read tensors ({error})") from error
    refuse_contradicting_switches(split_conventions(conventions)[1], info)
    return state, info


def refuse_contradicting_switches(switches: Mapping[str, bool], info: ModelInfo) -> None:
    """Raise when the convention tensors (present: on) and the metadata disagree on a switch."""
    stated = stated_switches(info.network, info.precond)
    for key, on in switches.items():
        if stated[key] != on:
            raise GtasrError(
                f"{info.path}: tensor 'gtasr.{key}' says {key} is {'on' if on else 'off'}, "
                "the metadata says the opposite"
            )


def _read_authors_file(
    path: Path, weights: str, *, res_con: bool
) -> tuple[dict[str, torch.Tensor], ModelInfo]:
    """An authors' checkpoint (:func:`gtasr.release.read_release`) as a model file reads:
    the tensors under gtasr's names and a description of the release family."""
    found = release.read_release(path, weights, res_con=res_con)
    extra = {"family": release.FAMILY, "source": path.name, "source_key": found.key}
    if found.ignored:
        extra["ignored"] = ", ".join(found.ignored)
    info = ModelInfo(
        path=path,
        network=found.network,
        precond=dict(release.PRECOND),
        scale=4,
        stage=0,
        iteration=0,
        weights=weights,
        extra=extra,
    )
    return found.state_dict, info


def load_model(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    weights: str | None = None,
    res_con: bool = False,
) -> tuple[torch.nn.Module, ModelInfo]:
    """Rebuild the consistency model stored in ``path`` (eval mode, on ``device``)."""
    from gtasr.method.precond import ConsistencyModel
    from gtasr.nets import build_network

    state, info = read_weights(path, weights, res_con=res_con)
    backbone = build_network(info.network)
    backbone.load_state_dict(state)  # read_weights has matched every name and shape
    model = ConsistencyModel(backbone, **info.precond)
    return model.to(device).eval(), info
