"""A model file's word is checked before it is used: metadata, tensor shapes, finite values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gtasr.errors import GtasrError
from gtasr.modelfile import all_finite, check_tensors, read_info, read_weights
from gtasr.nets import preset_config, state_shapes
from gtasr.nets.songunet import SongUNetSR

TINY = preset_config("tiny")
PRECOND = {"sigma_data": 0.5, "sigma_scale": 0.1, "noise_offset": 0.002}


def _file(path: Path, tensors: dict[str, torch.Tensor] | None = None, **changes: object) -> Path:
    """A model file with the given metadata changes (JSON for network and precond)."""
    metadata = {
        "gtasr.format": "1",
        "network": TINY,
        "precond": PRECOND,
        "scale": 4,
        "stage": 1,
        "iteration": 0,
        "weights": "ema",
        **changes,
    }
    text = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in metadata.items()}
    save_file(tensors or {"w": torch.zeros(1)}, str(path), metadata=text)
    return path


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"shape": "square"}, "unknown metadata key 'shape'"),
        ({"precond": {"evil": 1}}, "'precond' must have exactly the keys"),
        ({"precond": {**PRECOND, "sigma_data": -1}}, "'precond' sigma_data must be within"),
        ({"precond": {**PRECOND, "sigma_scale": "x"}}, "'precond' sigma_scale is not a number"),
        ({"precond": {**PRECOND, "lr_anchor": 1}}, "'precond' lr_anchor must be true or false"),
        ({"network": {**TINY, "upsampler": "cubic"}}, "upsampler must be one of"),
        ({"network": {**TINY, "base_channels": "wide"}}, "'base_channels': 'wide' is not an"),
        ({"network": {**TINY, "base_channels": 2**20}}, "'base_channels': 1048576 is not"),
        ({"network": {**TINY, "swin_window": 1000}}, "swin_window within 1..32"),
        ({"network": {**TINY, "lr_skip": 1}}, "'lr_skip': 1 is not true or false"),
        ({"network": {**TINY, "evil": 1}}, "unknown network config keys: evil"),
        ({"scale": 8}, "'scale' 8: gtasr models are x4"),
        ({"stage": 7}, "'stage' must be one of 0, 1, 2"),
        ({"iteration": -1}, "'iteration' must not be negative"),
        ({"weights": "both"}, "'weights' must be ema or raw"),
        ({"extra.family": "other"}, "'extra.family' 'other' is not a model family"),
        ({"scale": "inf"}, "damaged gtasr metadata"),
    ],
)
def test_bad_metadata_is_named(tmp_path: Path, changes: dict, problem: str) -> None:
    path = _file(tmp_path / "m.safetensors", **changes)
    with pytest.raises(GtasrError, match=r"m\.safetensors") as caught:
        read_info(path)
    assert problem in str(caught.value)


def test_the_lr_anchor_flag_is_read_back(tmp_path: Path) -> None:
    path = _file(tmp_path / "m.safetensors", precond={**PRECOND, "lr_anchor": True})
    assert read_info(path).precond["lr_anchor"] is True


def test_tensors_are_compared_with_the_network_before_it_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2 KB file claiming a 4096-wide network: refused, and the network never allocated."""
    built_on: list[str] = []
    original = SongUNetSR.__init__

    def recording(self: SongUNetSR, *args: object, **kwargs: object) -> None:
        built_on.append(torch.empty(0).device.type)
        original(self, *args, **kwargs)

    monkeypatch.setattr(SongUNetSR, "__init__", recording)
    huge = _file(tmp_path / "huge.safetensors", network={**TINY, "base_channels": 4096})
    with pytest.raises(GtasrError, match=r"huge\.safetensors: tensor '[\w.]+' of the described"):
        read_weights(huge)
    assert built_on == ["meta"]


def test_shape_and_type_mismatches_name_the_tensor(tmp_path: Path) -> None:
    tensors = {name: torch.zeros(shape) for name, shape in state_shapes(TINY).items()}
    check_tensors(read_info(_file(tmp_path / "ok.safetensors", tensors)))
    wrong = dict(tensors, **{"conv_in.weight": torch.zeros(1, 1)})
    with pytest.raises(GtasrError, match=r"'conv_in.weight' has shape \(1, 1\), but the network"):
        check_tensors(read_info(_file(tmp_path / "shape.safetensors", wrong)))
    extra = dict(tensors, stowaway=torch.zeros(1))
    with pytest.raises(GtasrError, match="'stowaway' is not part of the described network"):
        check_tensors(read_info(_file(tmp_path / "extra.safetensors", extra)))
    integers = dict(tensors, **{"conv_in.bias": torch.zeros(32, dtype=torch.int32)})
    with pytest.raises(GtasrError, match=r"'conv_in\.bias' holds I32, not floats"):
        check_tensors(read_info(_file(tmp_path / "ints.safetensors", integers)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_all_finite_reads_the_exponent_of_every_float_type(dtype: torch.dtype) -> None:
    finfo = torch.finfo(dtype)
    values = torch.tensor([0.0, -1.5, finfo.max, finfo.tiny / 4], dtype=dtype)
    assert all_finite(values)
    for bad in (float("nan"), float("inf"), float("-inf")):
        spoiled = values.clone()
        spoiled[2] = bad
        assert not all_finite(spoiled)


def _saved_model(path: Path, network: dict, precond: dict) -> dict[str, torch.Tensor]:
    """Save a randomly initialised network with ``save_model``; returns its tensors."""
    from gtasr.modelfile import save_model
    from gtasr.nets import build_network

    torch.manual_seed(0)
    state = build_network(network).state_dict()
    save_model(path, state, network=network, precond=precond, stage=1, iteration=3, weights="ema")
    return state


@pytest.mark.parametrize(("lr_skip", "lr_anchor"), [(True, False), (False, True)])
def test_switches_without_a_trace_in_the_weights_are_repeated_as_tensors(
    tmp_path: Path, lr_skip: bool, lr_anchor: bool
) -> None:
    from safetensors.torch import load_file

    precond = {**PRECOND, "lr_anchor": True} if lr_anchor else PRECOND
    path = tmp_path / "m.safetensors"
    state = _saved_model(path, {**TINY, "lr_skip": lr_skip}, precond)
    stored = load_file(str(path))
    conventions = {name: float(v) for name, v in stored.items() if name.startswith("gtasr.")}
    assert conventions == {f"gtasr.{'lr_skip' if lr_skip else 'lr_anchor'}": 1.0}
    loaded, info = read_weights(path)  # what gtasr reads: the backbone's tensors only
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[name], state[name]) for name in state)
    assert info.network["lr_skip"] is lr_skip and info.precond.get("lr_anchor", False) is lr_anchor


def test_convention_tensors_that_contradict_the_metadata_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    path = tmp_path / "m.safetensors"
    _saved_model(path, TINY, {**PRECOND, "lr_anchor": True})
    tensors = load_file(str(path))
    tensors["gtasr.lr_anchor"] = torch.zeros(1)
    edited = _file(tmp_path / "edited.safetensors", tensors, precond={**PRECOND, "lr_anchor": True})
    with pytest.raises(GtasrError, match=r"edited\.safetensors: tensor 'gtasr\.lr_anchor' says"):
        read_weights(edited)
    tensors["gtasr.lr_anchor"] = torch.ones(2)  # not the one-element form: not a convention
    with pytest.raises(GtasrError, match=r"'gtasr\.lr_anchor' is not part of the described"):
        read_weights(_file(tmp_path / "long.safetensors", tensors))


def test_a_switch_on_in_the_metadata_needs_its_tensor(tmp_path: Path) -> None:
    tensors = {name: torch.zeros(shape) for name, shape in state_shapes(TINY).items()}
    file = _file(tmp_path / "bare.safetensors", tensors, precond={**PRECOND, "lr_anchor": True})
    with pytest.raises(GtasrError, match=r"'gtasr\.lr_anchor' says lr_anchor is off"):
        read_weights(file)
    loaded, info = read_weights(_file(tmp_path / "plain.safetensors", tensors))
    assert loaded.keys() == tensors.keys() and "lr_anchor" not in info.precond
