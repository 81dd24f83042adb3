"""A small randomly initialised model file shared by the inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gtasr.method.precond import ConsistencyModel
from gtasr.modelfile import save_model
from gtasr.nets import build_network

PERTURBATION = 0.03
"""Std of the noise added to every weight, so the untrained network's output is not flat."""


def random_tiny_model(seed: int = 0) -> ConsistencyModel:
    """The tiny preset with seeded random weights, perturbed away from its initialisation."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        backbone = build_network("tiny")
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in backbone.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * PERTURBATION)
    return ConsistencyModel(backbone).eval()


@pytest.fixture(scope="session")
def tiny_model() -> ConsistencyModel:
    """The random tiny consistency model (eval mode)."""
    return random_tiny_model()


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory, tiny_model: ConsistencyModel) -> Path:
    """A gtasr model file of the random tiny network."""
    model = tiny_model
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
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
