"""``gtasr convert``, ``gtasr info`` and ONNX for the authors' checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

import gtasr
from gtasr.cli import main
from gtasr.errors import GtasrError, OutputError
from gtasr.fileio import file_sha256
from gtasr.infer.backends import OnnxDenoiser, TorchDenoiser
from gtasr.model_commands import convert
from gtasr.modelfile import read_info
from gtasr.release import read_release

from .conftest import SMALL_PARAMETERS


@pytest.fixture(scope="module")
def converted(release_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's params_ema as a gtasr model file, through the command line."""
    target = tmp_path_factory.mktemp("convert") / "release_small.safetensors"
    assert main(["convert", str(release_small), "-o", str(target)]) == 0
    return target


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two outputs in [-1, 1] (peak-to-peak 2)."""
    return float(10 * torch.log10(4 / ((a - b) ** 2).mean()))


def test_converted_file_describes_its_source(converted: Path, release_small: Path) -> None:
    info = read_info(converted)
    assert info.family == "release" and info.weights == "ema"
    assert info.network == read_release(release_small).network
    assert info.extra["source"] == "release_small.pth"
    assert info.extra["source_sha256"] == file_sha256(release_small)
    assert info.extra["source_key"] == "params_ema" and info.extra["dtype"] == "fp32"


def test_converted_file_computes_identical_outputs(
    converted: Path, release_small: Path, forward_reference: dict[str, torch.Tensor]
) -> None:
    x, lq = forward_reference["x_sigma0.5"], forward_reference["lq"]
    with torch.no_grad():
        ours = gtasr.load_model(converted)(x, 0.5, lq)
        direct = gtasr.load_model(release_small)(x, 0.5, lq)
    assert torch.equal(ours, direct)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_storage_halves_the_file_within_35_db(
    converted: Path,
    release_small: Path,
    tmp_path: Path,
    forward_reference: dict[str, torch.Tensor],
    dtype: str,
) -> None:
    target = tmp_path / f"{dtype}.safetensors"
    assert main(["convert", str(release_small), "-o", str(target), "--precision", dtype]) == 0
    assert target.stat().st_size < 0.55 * converted.stat().st_size
    x, lq = forward_reference["x_sigma1.0"], forward_reference["lq"]
    model = gtasr.load_model(target)
    assert next(model.parameters()).dtype == torch.float32
    with torch.no_grad():
        reduced = model(x, 1.0, lq)
        full = gtasr.load_model(converted)(x, 1.0, lq)
    assert _psnr(reduced, full) >= 35.0


def test_raw_weights_convert(
    release_small: Path, tmp_path: Path, forward_reference: dict[str, torch.Tensor]
) -> None:
    target = tmp_path / "raw.safetensors"
    assert main(["convert", str(release_small), "-o", str(target), "--weights", "raw"]) == 0
    assert read_info(target).extra["source_key"] == "params"
    x, lq = forward_reference["x_sigma1.0"], forward_reference["lq"]
    with torch.no_grad():
        out = gtasr.load_model(target)(x, 1.0, lq)
    assert float((out - forward_reference["out_raw_sigma1.0"]).abs().max()) <= 1e-4


def test_convert_refuses_to_overwrite(
    release_small: Path, converted: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "taken.safetensors"
    target.write_bytes(b"keep me")
    assert main(["convert", str(release_small), "-o", str(target)]) == 2
    assert target.read_bytes() == b"keep me" and "--overwrite" in caplog.text
    assert main(["convert", str(release_small), "-o", str(target), "--overwrite"]) == 0
    assert read_info(target).network == read_info(converted).network


def test_failed_convert_leaves_nothing(
    release_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OutputError, match=r"out\.safetensors: cannot write \(disk full\)"):
        convert(release_small, tmp_path / "out.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_info_on_a_release_file(
    release_small: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert main(["info", "--model", str(release_small), "--weights", "raw"]) == 0
    out = capsys.readouterr().out
    assert "family      release" in out and "weights     params (raw)" in out
    assert f"parameters  {SMALL_PARAMETERS:,}" in out
    assert "base_channels=32" in out and "blocks_per_level=2" in out and "res_con=False" in out
    assert f"sha256      {file_sha256(release_small)}" in out


def test_gtasr_files_hold_one_kind_of_weights(converted: Path) -> None:
    with pytest.raises(GtasrError, match="holds ema weights only"):
        gtasr.load_model(converted, weights="raw")


@pytest.mark.slow
def test_onnx_export_and_backend_for_a_converted_release_model(
    converted: Path, tmp_path: Path, forward_reference: dict[str, torch.Tensor], reference: Path
) -> None:
    pytest.importorskip("onnxruntime")
    onnx_file = tmp_path / "release.onnx"
    assert main(["export-onnx", "--model", str(converted), "-o", str(onnx_file)]) == 0
    ort = OnnxDenoiser(onnx_file, torch.device("cpu"))
    assert ort.family == "release"
    torch_denoiser = TorchDenoiser(gtasr.load_model(converted), torch.device("cpu"))
    x, lq = forward_reference["x_sigma1.0"], forward_reference["lq"]
    assert float((ort(x, 1.0, lq) - torch_denoiser(x, 1.0, lq)).abs().max()) <= 1e-4
    assert float((ort(x, 1.0, lq) - forward_reference["out_sigma1.0"]).abs().max()) <= 1e-4

    out_torch, out_onnx = tmp_path / "torch", tmp_path / "onnx"
    image = str(reference / "pipeline_lr.png")
    assert main(["upscale", image, "-o", str(out_torch), "--model", str(converted)]) == 0
    common = ["upscale", image, "--model", str(onnx_file), "--backend", "onnx"]
    assert main([*common, "-o", str(out_onnx)]) == 0
    a = np.asarray(PIL.Image.open(out_torch / "pipeline_lr.png"), dtype=np.int16)
    b = np.asarray(PIL.Image.open(out_onnx / "pipeline_lr.png"), dtype=np.int16)
    assert np.abs(a - b).max() <= 1
