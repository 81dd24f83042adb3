"""The OpenVINO backend and ``--backend auto``: same pixels as PyTorch, clear failures."""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from gtasr.cli import main
from gtasr.errors import GtasrError
from gtasr.infer import backends
from gtasr.infer.backends import OpenVinoDenoiser, TorchDenoiser, choose_backend
from gtasr.infer.upscaler import Upscaler
from gtasr.method.precond import ConsistencyModel

pytest.importorskip("openvino")
pytest.importorskip("onnx")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # exports take seconds

INSTALLED = backends.openvino_available
"""The real check (tests/conftest.py makes ``auto`` mean torch in the test process)."""


def test_openvino_matches_torch_at_every_shape_and_keeps_graphs_for_repeated_ones(
    onnx_file: Path, tiny_model: ConsistencyModel
) -> None:
    """One compiled graph serves every shape (dynamic), each as PyTorch computes it."""
    runtime = OpenVinoDenoiser(onnx_file, "fp32")
    assert (runtime.stride, runtime.scale, runtime.precision) == (
        tiny_model.backbone.stride,
        4,
        "fp32",
    )
    reference = TorchDenoiser(tiny_model, torch.device("cpu"))
    generator = torch.Generator().manual_seed(1)
    static = []
    for height, width in [(12, 20), (32, 32), (12, 20), (16, 16), (16, 16), (32, 32)]:
        y = torch.rand((1, 3, height, width), generator=generator) * 2 - 1
        x = torch.randn((1, 3, 4 * height, 4 * width), generator=generator)
        for sigma in (1.0, 0.3):
            difference = (runtime(x, sigma, y) - reference(x, sigma, y)).abs().max()
            assert float(difference) < 1e-4
        static.append([shapes[1][2:] for shapes in runtime._static])
    # a shape's second call (here its second sigma) gets a graph of its own; the two most
    # recently used are kept: (12, 20) drops out when (32, 32) comes back
    assert static[:3] == [[(12, 20)], [(12, 20), (32, 32)], [(32, 32), (12, 20)]]
    assert static[3:] == [[(12, 20), (16, 16)], [(12, 20), (16, 16)], [(16, 16), (32, 32)]]


def test_compiled_graphs_use_the_given_threads_unpinned(onnx_file: Path) -> None:
    """Several gtasr processes on one machine (``--ray`` workers) must not share a core:
    OpenVINO pins its threads to the first cores unless told not to."""
    runtime = OpenVinoDenoiser(onnx_file, "fp32", threads=1)
    y, x = torch.zeros((1, 3, 8, 8)), torch.zeros((1, 3, 32, 32))
    runtime(x, 1.0, y)
    runtime(x, 1.0, y)  # the second call compiles a static graph
    graphs = [runtime._dynamic, *runtime._static.values()]
    assert len([graph for graph in graphs if graph is not None]) >= 1
    for graph in graphs:
        if graph is not None:
            assert graph.compiled.get_property("ENABLE_CPU_PINNING") is False
            assert graph.compiled.get_property("INFERENCE_NUM_THREADS") == 1


def test_openvino_upscales_a_model_file_like_torch_with_tiles(tiny_model_file: Path) -> None:
    """A .safetensors model is exported on the fly; tiling and the seeded noise stay gtasr's."""
    rgb = np.random.default_rng(0).random((40, 52, 3)).astype(np.float32)
    torch_up = Upscaler.from_pretrained(tiny_model_file, device="cpu", backend="torch")
    openvino_up = Upscaler.from_pretrained(tiny_model_file, device="cpu", backend="openvino")
    for seed in (0, 7):
        expected = torch_up.upscale(rgb, seed=seed, tile=24, tile_overlap=8)
        result = openvino_up.upscale(rgb, seed=seed, tile=24, tile_overlap=8)
        assert np.abs(result - expected).max() < 1e-4
    other_seed = openvino_up.upscale(rgb, seed=1, tile=24, tile_overlap=8)
    assert np.abs(other_seed - result).max() > 0.01


def test_auto_picks_openvino_on_the_cpu_and_torch_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(backends, "openvino_available", INSTALLED)
    model, onnx = tmp_path / "m.safetensors", tmp_path / "m.onnx"
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert choose_backend("auto", cpu, model) == "openvino"
    assert choose_backend("auto", cpu, onnx) == "openvino"
    assert choose_backend("auto", cuda, model) == "torch"
    assert choose_backend("auto", torch.device("mps"), model) == "torch"
    assert choose_backend("torch", cpu, model) == "torch"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "onnx" else 1)
    assert choose_backend("auto", cpu, model) == "torch"  # exporting needs onnx
    assert choose_backend("auto", cpu, onnx) == "openvino"
    monkeypatch.setattr(backends, "openvino_available", lambda exports=True: False)
    assert choose_backend("auto", cpu, model) == "torch"
    assert choose_backend("auto", cpu, onnx) == "onnx"


def test_upscale_logs_the_backend_auto_chose(
    tiny_model_file: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backends, "openvino_available", INSTALLED)
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    from PIL import Image

    Image.fromarray(np.full((12, 12, 3), 90, np.uint8)).save(image)
    with caplog.at_level(logging.INFO, logger="gtasr"):
        code = main(
            ["upscale", str(image), "-o", str(tmp_path / "out"), "--model", str(tiny_model_file)]
        )
    assert code == 0
    assert "backend: openvino (cpu, fp32)" in caplog.text
    assert (tmp_path / "out" / "a.png").is_file()


def test_auto_runs_torch_when_openvino_cannot_take_the_model(
    tiny_model_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An export or compile failure is a logged fallback under auto, an error when asked for."""
    monkeypatch.setattr(backends, "openvino_available", INSTALLED)
    from gtasr.errors import RuntimeUnavailable
    from gtasr.infer import upscaler

    def cannot(*args: object) -> None:
        raise RuntimeUnavailable(f"{tiny_model_file}: cannot export it to ONNX (unsupported op)")

    monkeypatch.setattr(upscaler, "_exported_denoiser", cannot)
    with caplog.at_level(logging.WARNING, logger="gtasr"):
        fallback = Upscaler.from_pretrained(tiny_model_file, device="cpu")
    assert isinstance(fallback.denoiser, TorchDenoiser)
    assert "cannot export it to ONNX (unsupported op); running the model with torch" in caplog.text
    with pytest.raises(RuntimeUnavailable, match="unsupported op"):
        Upscaler.from_pretrained(tiny_model_file, device="cpu", backend="openvino")


def test_a_reduced_precision_the_cpu_lacks_falls_back_to_fp32_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class CpuWithoutBf16:
        def get_property(self, device: str, name: str) -> list[str]:
            assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
            return ["FP32", "INT8"]

    with caplog.at_level(logging.WARNING, logger="gtasr"):
        assert backends._openvino_precision(CpuWithoutBf16(), "bf16") == "fp32"
        assert backends._openvino_precision(CpuWithoutBf16(), "fp32") == "fp32"
    assert "no native bf16; OpenVINO runs in fp32" in caplog.text


def test_openvino_needs_the_cpu(tiny_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gtasr.infer import upscaler

    monkeypatch.setattr(upscaler, "resolve_device", lambda device: torch.device("cuda"))
    with pytest.raises(GtasrError, match="runs on the CPU; use --device cpu"):
        Upscaler.from_pretrained(tiny_model_file, device="cuda", backend="openvino")


def test_openvino_missing_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, onnx_file: Path
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(GtasrError, match=r"pip install 'gtasr\[openvino\]'"):
        OpenVinoDenoiser(onnx_file)


def test_a_damaged_onnx_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"\x08\x07not a graph" * 10)
    image = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    args = ["upscale", str(image), "-o", str(tmp_path / "out"), "--model", str(damaged)]
    assert main([*args, "--backend", "openvino"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "damaged.onnx: not a readable ONNX model" in errors[0]
    assert "\n" not in errors[0] and not any(r.exc_info for r in caplog.records)
    assert "Traceback" not in capsys.readouterr().err


def test_a_model_is_exported_once_and_a_changed_file_again(
    tiny_model_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_random_model: Callable[..., ConsistencyModel],
    make_model_file: Callable[[Path, ConsistencyModel], Path],
) -> None:
    """The ONNX export is cached by the model file's content; a cached start exports nothing."""
    from gtasr.infer import onnx_export

    monkeypatch.setenv("GTASR_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model.safetensors"
    model.write_bytes(tiny_model_file.read_bytes())
    rgb = np.random.default_rng(4).random((16, 16, 3)).astype(np.float32)
    first = Upscaler.from_pretrained(model, backend="openvino").upscale(rgb, seed=3)
    exports = sorted((tmp_path / "cache" / "onnx").iterdir())
    assert len(exports) == 1
    assert any((tmp_path / "cache" / "openvino").iterdir())  # OpenVINO's compiled graph

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "export_onnx", no_export)
    again = Upscaler.from_pretrained(model, backend="openvino").upscale(rgb, seed=3)
    assert np.array_equal(first, again)
    monkeypatch.undo()
    monkeypatch.setenv("GTASR_CACHE", str(tmp_path / "cache"))
    make_model_file(model, make_random_model(seed=5))
    changed = Upscaler.from_pretrained(model, backend="openvino").upscale(rgb, seed=3)
    assert len(list((tmp_path / "cache" / "onnx").iterdir())) == 2
    expected = Upscaler.from_pretrained(model, backend="torch").upscale(rgb, seed=3)
    assert np.abs(changed - expected).max() < 1e-4 < np.abs(changed - first).max()


SIGNAL_AFTER_GRAPHS = """
import gc, os, signal, sys
from gtasr.infer.backends import OpenVinoDenoiser

first = OpenVinoDenoiser(sys.argv[1], precision="fp32")
second = OpenVinoDenoiser(sys.argv[1], precision="bf16")
del first  # the first made goes first
gc.collect()
del second
gc.collect()
handled = []
signal.signal(signal.SIGUSR1, lambda *args: handled.append(True))
os.kill(os.getpid(), signal.SIGUSR1)
print("handled" if handled else "not handled")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGUSR1 on Windows")
def test_a_signal_after_graphs_went_in_any_order_reaches_its_python_handler(
    onnx_file: Path,
) -> None:
    """OpenVINO's CPU plugin swaps the thread's alternate signal stack; with a plugin per
    denoiser, the two going in the order they came left a freed stack behind, and the
    next signal handled in Python (Ctrl-C, SIGTERM, a loader worker's exit) ended the
    process with SIGSEGV."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", SIGNAL_AFTER_GRAPHS, str(onnx_file)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["handled"]
