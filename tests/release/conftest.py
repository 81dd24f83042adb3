"""The authors' reference data (made by running their code) and release-format files built here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gtasr.release import constant_buffers, release_names

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


def release_state_dict(
    backbone: torch.nn.Module, resolution: int = 64, prefix: str = ""
) -> dict[str, torch.Tensor]:
    """A gtasr backbone's weights under the release's names, buffers included.

    Lets tests write release-format files of layouts the reference data does
    not cover; the reference fixture itself checks the names against the
    authors' code.
    """
    state = backbone.state_dict()
    names = release_names(list(state), backbone.config, resolution)
    out = {prefix + names[k]: v.clone() for k, v in state.items()}
    constants = constant_buffers(names, backbone.config["swin_window"])
    for name, value in constants.items():
        out[prefix + name] = value.to(torch.float16) if value.is_floating_point() else value.clone()
    return out
