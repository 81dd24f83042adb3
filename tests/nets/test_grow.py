"""gtasr.nets.grow and scripts/widen_head.py: a wider head that computes the same output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gtasr.errors import GtasrError
from gtasr.infer.upscaler import bundled_model_path
from gtasr.model_commands import preset_name
from gtasr.modelfile import read_info, read_weights
from gtasr.nets import build_network, preset_config
from gtasr.nets.grow import widen_head

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "widen_head.py"


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 32, 32, generator=generator)
    y = torch.rand(2, 3, 8, 8, generator=generator)
    return x, torch.tensor([0.4, -1.2]), y


def _bundled() -> tuple[dict[str, torch.Tensor], dict]:
    state, info = read_weights(bundled_model_path())
    return state, info.network


def test_the_wider_head_computes_the_trained_networks_output() -> None:
    state, network = _bundled()
    small = build_network(network)
    small.load_state_dict(state)
    wide_state, wide_network = widen_head(state, network, 48)
    wide = build_network(wide_network)
    wide.load_state_dict(wide_state)
    assert wide_network["head_channels"] == 48
    assert wide_state["up2.weight"].shape == (48, 48, 3, 3)
    with torch.no_grad():
        expected = small.eval()(*_inputs())
        got = wide.eval()(*_inputs())
    assert expected.abs().mean() > 0.01
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_the_new_channels_learn_from_the_first_step() -> None:
    state, network = _bundled()
    head = network["head_channels"]
    wide_state, wide_network = widen_head(state, network, 2 * head)
    wide = build_network(wide_network)
    wide.load_state_dict(wide_state)
    wide(*_inputs()).square().mean().backward()
    new_columns = wide.conv_out.weight.grad[:, head:]
    assert new_columns.abs().max() > 0
    assert wide_state["head_conv.weight"][head:].abs().max() > 0


def test_only_widening_of_a_nearest_neighbour_head_is_accepted() -> None:
    network = preset_config("tiny")
    state = build_network(network).state_dict()
    with pytest.raises(GtasrError, match="16 channels already"):
        widen_head(state, network, 16)
    shuffle = {**network, "upsampler": "pixelshuffle", "head_channels": 48}
    with pytest.raises(GtasrError, match="nearest-neighbour"):
        widen_head(build_network(shuffle).state_dict(), shuffle, 64)


def test_the_script_writes_a_wider_model_that_keeps_the_recorded_training(tmp_path: Path) -> None:
    target = tmp_path / "wide.safetensors"
    source = read_info(bundled_model_path())
    head = source.network["head_channels"]
    width = head + 8
    command = [sys.executable, str(SCRIPT), str(bundled_model_path()), str(target)]
    command += ["--width", str(width)]
    subprocess.run(command, check=True, timeout=120)
    written = read_info(target)
    assert written.network == {**source.network, "head_channels": width}
    assert written.extra["training_config"] == source.extra["training_config"]
    assert written.extra["description"].startswith(source.extra["description"])
    assert f"widened from {head} to {width}" in written.extra["description"]
    assert (written.stage, written.iteration) == (source.stage, source.iteration)


def test_info_names_the_preset_a_network_changes_in_a_few_settings() -> None:
    tiny = preset_config("tiny")
    assert preset_name(tiny) == "tiny preset"
    assert preset_name({**tiny, "head_channels": 48}) == "tiny preset with head_channels=48"
    compact = {**tiny, "base_channels": 64, "emb_channels": 256, "swin_dim": 64}
    assert preset_name({**compact, "head_channels": 32}) == "compact preset with blocks_per_level=1"
    wider = {**tiny, "base_channels": 48, "emb_channels": 192, "swin_dim": 48}
    assert preset_name({**wider, "head_channels": 24}) == "custom architecture"
