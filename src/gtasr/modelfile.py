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

Files are written atomically (temporary file, then rename). :func:`read_weights`
is where every model file is opened: gtasr files and the authors' released
checkpoints (:mod:`gtasr.release`) alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gtasr.errors import GtasrError
from gtasr.fileio import atomic_path

FORMAT_VERSION = "1"


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
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def save_described(
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], info: ModelInfo
) -> None:
    """Write tensors as a model file that ``info`` describes (its ``extra`` included)."""
    save_model(
        path,
        state_dict,
        network=info.network,
        precond=info.precond,
        stage=info.stage,
        iteration=info.iteration,
        weights=info.weights,
        scale=info.scale,
        extra=info.extra,
    )


def read_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Read a model file's metadata without loading its tensors."""
    from safetensors import safe_open

    file = Path(path)
    if not file.is_file():
        raise GtasrError(f"{file}: model file not found")
    try:
        with safe_open(str(file), framework="pt") as handle:
            meta = handle.metadata() or {}
    except Exception as error:  # safetensors raises several types for bad headers
        raise GtasrError(f"{file}: not a safetensors model file ({error})") from error
    if meta.get("gtasr.format") != FORMAT_VERSION:
        raise GtasrError(f"{file}: not a gtasr model file (no 'gtasr.format' metadata)")
    try:
        return ModelInfo(
            path=file,
            network=json.loads(meta["network"]),
            precond=json.loads(meta["precond"]),
            scale=int(meta["scale"]),
            stage=int(meta["stage"]),
            iteration=int(meta["iteration"]),
            weights=meta["weights"],
            extra={k[len("extra.") :]: v for k, v in meta.items() if k.startswith("extra.")},
        )
    except (KeyError, ValueError) as error:
        raise GtasrError(f"{file}: damaged gtasr metadata ({error})") from error


def read_weights(
    path: str | os.PathLike[str], weights: str | None = None, *, res_con: bool = False
) -> tuple[dict[str, torch.Tensor], ModelInfo]:
    """Backbone tensors (gtasr names) and description of any model file gtasr reads.

    ``weights`` ("ema" or "raw") picks ``params_ema`` (the default) or
    ``params`` of a release checkpoint; a gtasr file holds one kind, so there
    it may only name that kind. ``res_con`` applies to release checkpoints only
    (their files cannot tell it).
    """
    from gtasr import release

    file = Path(path)
    if file.is_file() and release.is_release_file(file):
        return release.read_release_model(file, weights or "ema", res_con=res_con)
    from safetensors.torch import load_file

    info = read_info(file)
    if weights is not None and weights != info.weights:
        raise GtasrError(f"{file}: holds {info.weights} weights only, not {weights}")
    return load_file(str(info.path), device="cpu"), info


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
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise GtasrError(
            f"{info.path}: weights do not fit the stored architecture "
            f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)"
        )
    model = ConsistencyModel(backbone, **info.precond)
    return model.to(device).eval(), info
