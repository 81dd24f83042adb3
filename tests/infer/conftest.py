"""A small randomly initialised model file shared by the inference tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from gtasr.method.precond import ConsistencyModel
from gtasr.modelfile import save_model
from gtasr.nets import build_network

PERTURBATION = 0.03
"""Std of the noise added to every weight, so the untrained network's output is not flat."""


def random_model(network: str | dict[str, Any] = "tiny", seed: int = 0) -> ConsistencyModel:
    """A network (preset or config) with seeded random weights, perturbed from their start."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        backbone = build_network(network)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in backbone.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * PERTURBATION)
    return ConsistencyModel(backbone).eval()


@pytest.fixture(scope="session")
def make_random_model() -> Callable[..., ConsistencyModel]:
    """:func:`random_model` as a fixture, for tests that need another architecture."""
    return random_model


@pytest.fixture(scope="session")
def tiny_model() -> ConsistencyModel:
    """The random tiny consistency model (eval mode)."""
    return random_model()


def write_model_file(path: Path, model: ConsistencyModel) -> Path:
    """Save ``model`` as a gtasr model file (Stage I, step 0, raw weights) at ``path``."""
    save_model(
        path,
        model.backbone.state_dict(),
        network=model.backbone.config,
        precond=model.precond_config(),
        stage=1,
        iteration=0,
        weights="raw",
    )
    return path


@pytest.fixture(scope="session")
def make_model_file() -> Callable[[Path, ConsistencyModel], Path]:
    """:func:`write_model_file` as a fixture."""
    return write_model_file


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory, tiny_model: ConsistencyModel) -> Path:
    """A gtasr model file of the random tiny network."""
    return write_model_file(tmp_path_factory.mktemp("model") / "tiny.safetensors", tiny_model)


@pytest.fixture(scope="session")
def onnx_file(tiny_model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model file exported once through the command line (onnxruntime's and
    OpenVINO's tests read it)."""
    pytest.importorskip("onnx")
    from gtasr.cli import main

    target = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert main(["export-onnx", "--model", str(tiny_model_file), "-o", str(target)]) == 0
    return target
