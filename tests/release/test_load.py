"""Reading the authors' checkpoints: settings from tensors, names mapped, the release's numbers."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import gtasr
from gtasr.cli import main
from gtasr.errors import GtasrError
from gtasr.method.precond import ConsistencyModel
from gtasr.modelfile import load_model
from gtasr.nets import SongUNetConfig, build_network, preset_config
from gtasr.nets.release_layout import release_state_dict
from gtasr.release import read_release

from .conftest import SMALL_PARAMETERS

PAPER_PARAMETERS = 171_518_529

SMALL_NETWORK = {
    "base_channels": 32,
    "channel_mults": [1, 2, 2, 2],
    "blocks_per_level": 2,
    "attention_levels": [0, 1, 2, 3],
    "emb_channels": 128,
    "swin_dim": 32,
    "swin_heads": 2,
    "swin_window": 8,
    "swin_mlp_ratio": 4.0,
    "swin_qkv_bias": True,
    "head_channels": 32,
    "image_channels": 3,
    "lr_skip": False,
    "swin_norm_groups": 32,
    "upsampler": "nearest",
}


def test_settings_are_read_from_the_tensors(release_small: Path) -> None:
    found = read_release(release_small)
    assert {k: found.network[k] for k in SMALL_NETWORK} == SMALL_NETWORK
    assert found.key == "params_ema" and found.ignored == ()
    assert sum(t.numel() for t in found.state_dict.values()) == SMALL_PARAMETERS
    backbone = build_network(found.network)
    assert set(found.state_dict) == set(backbone.state_dict())


@pytest.fixture(scope="module")
def ema_model(release_small: Path) -> torch.nn.Module:
    """``gtasr.load_model`` of the fixture: its params_ema."""
    return gtasr.load_model(release_small)


def _max_error(
    model: torch.nn.Module, reference: dict[str, torch.Tensor], sigma: float, expected: str
) -> float:
    with torch.no_grad():
        out = model(reference[f"x_sigma{sigma}"], sigma, reference["lq"])
    return float((out - reference[expected]).abs().max())


@pytest.mark.parametrize("sigma", [1.0, 0.5, 0.05])
def test_ema_outputs_match_the_release_network(
    ema_model: torch.nn.Module, forward_reference: dict[str, torch.Tensor], sigma: float
) -> None:
    assert _max_error(ema_model, forward_reference, sigma, f"out_sigma{sigma}") <= 1e-4


def test_raw_outputs_match_the_release_network(
    release_small: Path, forward_reference: dict[str, torch.Tensor]
) -> None:
    model = gtasr.load_model(release_small, weights="raw")
    assert _max_error(model, forward_reference, 1.0, "out_raw_sigma1.0") <= 1e-4


def test_gtasr_swin_norm_rule_would_not_match(
    release_small: Path, forward_reference: dict[str, torch.Tensor]
) -> None:
    """At 32 channels the release's 32-group Swin GroupNorm is what makes the numbers agree."""
    found = read_release(release_small)
    backbone = build_network({**found.network, "swin_norm_groups": 0})
    backbone.load_state_dict(found.state_dict)
    with torch.no_grad():
        out = ConsistencyModel(backbone).eval()(
            forward_reference["x_sigma1.0"], 1.0, forward_reference["lq"]
        )
    assert float((out - forward_reference["out_sigma1.0"]).abs().max()) > 1e-2


def test_model_file_reader_describes_a_release_file(release_small: Path) -> None:
    model, info = load_model(release_small, weights="raw")
    assert info.family == "release" and info.weights == "raw"
    assert info.extra["source_key"] == "params" and info.extra["source"] == "release_small.pth"
    assert info.precond == model.precond_config()


def _paper_state_dict(reference: Path) -> dict[str, torch.Tensor]:
    """Random tensors under every name and shape of the paper-size release network."""
    shapes = json.loads((reference / "release_paper_state_dict_shapes.json").read_text())
    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in shapes.items():
        if name.endswith("resample_filter"):
            state[name] = torch.full(shape, 0.25, dtype=torch.float16)
        elif name.endswith("relative_position_index"):
            from gtasr.nets.swin import relative_position_index

            state[name] = relative_position_index(8).reshape(shape)
        else:
            state[name] = torch.randn(shape, generator=generator)
    return state


@pytest.mark.slow
def test_paper_size_release_file_loads_completely(reference: Path, tmp_path: Path) -> None:
    state = _paper_state_dict(reference)
    path = tmp_path / "GTASR_final_phase.pth"
    torch.save({"params_ema": state}, path)
    model = gtasr.load_model(path)
    parameters = dict(model.backbone.named_parameters())
    assert sum(p.numel() for p in parameters.values()) == PAPER_PARAMETERS
    assert len(parameters) == 909
    placed = {
        "conv_in.weight": "model.enc.64x64_conv.weight",
        "decoder.0.attention.block.attn.relative_position_bias": (
            "model.dec.8x8_in0.swin_layer.blocks.0.attn.relative_position_bias_table"
        ),
        "head_conv.weight": "model.dec.64x64_aux_conv.weight",
        "conv_out.bias": "model.conv_last.bias",
    }
    for ours, theirs in placed.items():
        assert torch.equal(parameters[ours].detach(), state[theirs])
    assert model.backbone.config["swin_heads"] == 6 and model.backbone.config["swin_dim"] == 192


def test_other_layouts_round_trip(tmp_path: Path) -> None:
    """Three levels, Swin only below the top level, no qkv bias, MLP ratio 2, pixel-shuffle head."""
    network = {
        "base_channels": 48,
        "channel_mults": [1, 2, 3],
        "blocks_per_level": 1,
        "attention_levels": [1, 2],
        "emb_channels": 96,
        "swin_dim": 32,
        "swin_heads": 4,
        "swin_window": 4,
        "swin_mlp_ratio": 2.0,
        "swin_qkv_bias": False,
        "head_channels": 48,
        "swin_norm_groups": 32,
        "upsampler": "pixelshuffle",
    }
    torch.manual_seed(0)
    backbone = build_network(network).eval()
    with torch.no_grad():
        for parameter in backbone.parameters():
            parameter.normal_(0, 0.2)
    path = tmp_path / "other.pth"
    state = release_state_dict(backbone, resolution=32)
    torch.save({"params": {f"module.{k}": v for k, v in state.items()}}, path)
    model = gtasr.load_model(path, weights="raw")
    assert {k: model.backbone.config[k] for k in network} == network
    y = torch.rand(1, 3, 8, 12) * 2 - 1
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(model(x, 0.7, y), ConsistencyModel(backbone)(x, 0.7, y))


def test_res_con_is_the_callers_choice(release_small: Path, ema_model: torch.nn.Module) -> None:
    assert ema_model.backbone.config["lr_skip"] is False
    assert gtasr.load_model(release_small, res_con=True).backbone.config["lr_skip"] is True


def test_bare_state_dict_in_safetensors_loads(release_small: Path, tmp_path: Path) -> None:
    data = torch.load(release_small, weights_only=True)
    path = tmp_path / "renamed.safetensors"
    save_file({k: v.contiguous() for k, v in data["params_ema"].items()}, str(path))
    found = read_release(path)
    assert found.key == "(top level)"
    reference = read_release(release_small)
    assert all(torch.equal(found.state_dict[k], v) for k, v in reference.state_dict.items())


def _small_state(release_small: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(release_small, weights_only=True)["params_ema"])


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("reshape", "model.dec.8x8_in1.conv0.weight"),
        ("extra", "model.dec.8x8_in1.qkv.weight"),
        ("missing", "model.dec.16x16_block1.norm1.bias"),
        ("filter", "model.enc.16x16_down.skip.resample_filter"),
    ],
)
def test_a_tensor_that_does_not_fit_is_named(
    release_small: Path, tmp_path: Path, change: str, named: str
) -> None:
    state = _small_state(release_small)
    if change == "reshape":
        state[named] = torch.zeros(64, 64, 1, 1)
    elif change == "extra":
        state[named] = torch.zeros(192, 64, 1, 1)
    elif change == "missing":
        del state[named]
    else:
        state[named] = torch.full((1, 1, 2, 2), 0.5, dtype=torch.float16)
    path = tmp_path / "edited.pth"
    torch.save({"params_ema": state}, path)
    with pytest.raises(GtasrError, match=f"'{named}'"):
        gtasr.load_model(path)


def test_a_file_of_another_network_names_its_first_tensor(tmp_path: Path) -> None:
    path = tmp_path / "esrgan.pth"
    torch.save({"params_ema": {"conv_first.weight": torch.zeros(64, 3, 3, 3)}}, path)
    with pytest.raises(GtasrError, match=r"'conv_first\.weight' is not one of the release's"):
        gtasr.load_model(path)


def test_missing_weights_key_is_reported(release_small: Path, tmp_path: Path) -> None:
    path = tmp_path / "raw_only.pth"
    torch.save({"params": _small_state(release_small)}, path)
    with pytest.raises(GtasrError, match="has no 'params_ema' weights \\(it holds params\\)"):
        gtasr.load_model(path)


def test_training_buffer_weight_lap_is_ignored(release_small: Path, tmp_path: Path) -> None:
    state = _small_state(release_small)
    state["weight_lap"] = torch.ones(3, 1, 3, 3)
    path = tmp_path / "with_lap.pth"
    torch.save({"params_ema": state}, path)
    assert read_release(path).ignored == ("weight_lap",)


class _WritesAFile:
    """Unpickling this calls ``open(target, "w")``: it creates the file."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.target, "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_pickle_that_would_run_code_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, writer: str
) -> None:
    marker = tmp_path / "was-run"
    path = tmp_path / "evil.pth"
    payload = {"params_ema": {"model.map_layer0.weight": _WritesAFile(marker)}}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(GtasrError, match="refused"):
        gtasr.load_model(path)
    assert main(["info", "--model", str(path)]) == 2
    assert main(["upscale", str(path), "-o", str(tmp_path / "out"), "--model", str(path)]) == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    for record in errors:
        message = record.getMessage()
        assert "refused" in message and "\n" not in message and record.exc_info is None
    assert not marker.exists()


def test_network_configs_round_trip_with_every_field() -> None:
    """Every field is written, the authors' options included, and read back unchanged."""
    for name in ("paper", "small", "tiny"):
        config = preset_config(name)
        assert (config["swin_norm_groups"], config["upsampler"]) == (0, "nearest")
    release = SongUNetConfig.from_dict({**preset_config("paper"), "swin_norm_groups": 32})
    assert release.to_dict()["swin_norm_groups"] == 32
    assert SongUNetConfig.from_dict(release.to_dict()) == release


def test_a_damaged_checkpoint_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "cut.pth"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(GtasrError, match="cannot read as a PyTorch checkpoint"):
        gtasr.load_model(path)
