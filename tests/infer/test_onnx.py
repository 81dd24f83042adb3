"""ONNX export: dynamic sizes, metadata, and onnxruntime matching PyTorch for the same noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gtasr.cli import main
from gtasr.errors import GtasrError
from gtasr.infer.backends import OnnxDenoiser, TorchDenoiser
from gtasr.infer.upscaler import Upscaler
from gtasr.method.precond import ConsistencyModel

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow  # exporting the model takes over 10 s


def test_onnxruntime_matches_torch_at_other_sizes(
    onnx_file: Path, tiny_model: ConsistencyModel
) -> None:
    ort = OnnxDenoiser(onnx_file, torch.device("cpu"))
    assert (ort.stride, ort.scale) == (tiny_model.backbone.stride, 4)
    reference = TorchDenoiser(tiny_model, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    # sizes unlike the export example: windows that need padding and ones that do not
    for height, width in [(12, 20), (32, 32)]:
        y = torch.rand((1, 3, height, width), generator=generator) * 2 - 1
        x = torch.randn((1, 3, 4 * height, 4 * width), generator=generator)
        for sigma in (1.0, 0.5):
            difference = (ort(x, sigma, y) - reference(x, sigma, y)).abs().max()
            assert float(difference) < 1e-3


def test_onnx_backend_upscales_like_torch(onnx_file: Path, tiny_model_file: Path) -> None:
    rgb = np.random.default_rng(0).random((10, 14, 3)).astype(np.float32)
    torch_result = Upscaler.from_pretrained(tiny_model_file, device="cpu", backend="torch")
    torch_result = torch_result.upscale(rgb, seed=2)
    onnx_result = Upscaler.from_pretrained(onnx_file, device="cpu", backend="onnx").upscale(
        rgb, seed=2
    )
    assert np.abs(onnx_result - torch_result).max() < 1e-3


def test_onnx_model_refused_by_torch_backend(onnx_file: Path) -> None:
    with pytest.raises(GtasrError, match="--backend onnx or openvino"):
        Upscaler.from_pretrained(onnx_file, device="cpu", backend="torch")


def test_exported_graph_is_dynamic_and_not_overwritten(
    onnx_file: Path, tiny_model_file: Path
) -> None:
    import onnx

    graph = onnx.load(str(onnx_file))
    meta = {entry.key: entry.value for entry in graph.metadata_props}
    assert meta["gtasr.scale"] == "4"
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[2], str) and isinstance(dims[3], str)  # dynamic height and width
    before = onnx_file.stat().st_mtime_ns
    assert main(["export-onnx", "--model", str(tiny_model_file), "-o", str(onnx_file)]) == 2
    assert onnx_file.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        ({"gtasr.stride": "0"}, "'gtasr.stride' must be within"),
        ({"gtasr.stride": "-4"}, "'gtasr.stride' must be a whole number"),
        ({"gtasr.scale": "x4"}, "'gtasr.scale' must be a whole number"),
        ({"gtasr.scale": "2"}, "gtasr models are x4"),
        ({"gtasr.network": "[" * 5000 + "]" * 5000}, "damaged 'gtasr.network'"),
    ],
)
def test_untrusted_onnx_metadata_is_refused_in_one_line(
    onnx_file: Path, tmp_path: Path, entries: dict[str, str], says: str
) -> None:
    import onnx

    graph = onnx.load(str(onnx_file))
    for prop in graph.metadata_props:
        if prop.key in entries:
            prop.value = entries[prop.key]
    changed = tmp_path / "changed.onnx"
    onnx.save(graph, str(changed))
    with pytest.raises(GtasrError, match=says):
        OnnxDenoiser(changed, torch.device("cpu"))


def test_an_onnx_graph_with_other_inputs_is_refused(onnx_file: Path, tmp_path: Path) -> None:
    import onnx

    graph = onnx.load(str(onnx_file))
    renamed = {"x": "image"}
    for node in graph.graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
    graph.graph.input[0].name = renamed.get(graph.graph.input[0].name, graph.graph.input[0].name)
    changed = tmp_path / "renamed.onnx"
    onnx.save(graph, str(changed))
    with pytest.raises(GtasrError, match=r"takes inputs .*image.*a gtasr export takes x, sigma, y"):
        OnnxDenoiser(changed, torch.device("cpu"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1]."""
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_the_bundled_model_exports_and_the_onnx_runtimes_upscale_like_torch(
    tmp_path: Path,
) -> None:
    """The bundled model anchors its output on bicubic(y) (lr_anchor): the export traces that
    upsampling by output size, so the graph runs at any size and gives torch's pixels, in
    onnxruntime and in OpenVINO (fp32 within float rounding; bf16 within its precision)."""
    from gtasr.infer.upscaler import bundled_model_path

    target = tmp_path / "bundled.onnx"
    assert main(["export-onnx", "--model", str(bundled_model_path()), "-o", str(target)]) == 0
    rgb = np.random.default_rng(3).random((28, 36, 3)).astype(np.float32)
    torch_up = Upscaler.from_pretrained(device="cpu", backend="torch")
    torch_result = torch_up.upscale(rgb, seed=5, tile=None)
    onnx = Upscaler.from_pretrained(target, device="cpu", backend="onnx")
    onnx_result = onnx.upscale(rgb, seed=5, tile=None)
    assert onnx_result.shape == torch_result.shape == (112, 144, 3)
    assert np.abs(onnx_result - torch_result).max() < 1e-3
    pytest.importorskip("openvino")
    for precision, floor in (("fp32", 80.0), ("bf16", 40.0)):
        runtime = Upscaler.from_pretrained(target, backend="openvino", precision=precision)
        result = runtime.upscale(rgb, seed=5, tile=None)
        assert result.shape == torch_result.shape
        reference = torch_result
        if runtime.denoiser.precision == "bf16":
            reference = Upscaler.from_pretrained(backend="torch", precision="bf16").upscale(
                rgb, seed=5, tile=None
            )
        assert psnr(result, torch_result) > floor, precision
        assert psnr(result, reference) > floor, precision
