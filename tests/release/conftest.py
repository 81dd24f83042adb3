"""The authors' reference data (made by running their code) and release-format files built here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SMALL_PARAMETERS = 3_065_565  # release_small_config.json


@pytest.fixture(scope="session")
def reference(shared_data: Path) -> Path:
    """``release-reference/``: its README says what each file holds."""
    folder = shared_data / "release-reference"
    if not folder.is_dir():
        pytest.skip(f"release reference data not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def release_small(reference: Path) -> Path:
    """The reduced-width checkpoint in the release's format (params and params_ema)."""
    return reference / "release_small.pth"


@pytest.fixture(scope="session")
def forward_reference(reference: Path) -> dict[str, torch.Tensor]:
    """lq, noise, x_sigma*, and the release network's outputs out_sigma* / out_raw_sigma1.0."""
    return load_file(str(reference / "forward_reference.safetensors"))
