"""The default model shipped in the package: found offline, described, and better than bicubic."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from gtasr.cli import main
from gtasr.imageio import read_image, to_tensor
from gtasr.infer.resample import resize
from gtasr.infer.upscaler import Upscaler, bundled_model_path
from gtasr.modelfile import read_info
from gtasr.perceptual import LPIPS

IMAGES = 8  # the first 8 pairs of imagenet-test-sample, by name


def test_bundled_model_ships_in_the_package() -> None:
    path = bundled_model_path()
    assert path.is_file(), "src/gtasr/weights/gtasr-default.safetensors is missing"
    assert path.parent == Path(__import__("gtasr").__file__).parent / "weights"
    assert path.stat().st_size < 20 * 2**20  # float16 weights
    info = read_info(path)
    assert (info.scale, info.weights) == (4, "ema")
    # the cpu_compact recipe: the network predicts the residual over bicubic (lr_anchor)
    assert info.network["lr_skip"] is False and info.precond["lr_anchor"] is True
    assert info.iteration > 0
    assert "GTASR-compact" in info.extra["description"]
    assert "stage: " in info.extra["training_config"]


def test_info_describes_the_bundled_model(capsys: pytest.CaptureFixture[str]) -> None:
    path = bundled_model_path()
    assert main(["info", "--model", str(path)]) == 0
    out = capsys.readouterr().out
    assert "compact preset" in out and "description GTASR-compact" in out
    assert "training_config" in out and "lines in the file's metadata" in out


def test_bundled_model_beats_bicubic_on_lpips(shared_data: Path, one_thread) -> None:
    sample = shared_data / "imagenet-test-sample"
    names = sorted(p.name for p in (sample / "lq").glob("*.png"))[:IMAGES]
    upscaler = Upscaler.from_pretrained(device="cpu")
    lpips = LPIPS(net="alex").eval()
    ours, bicubic = [], []
    for name in names:
        lq = PIL.Image.open(sample / "lq" / name).convert("RGB")
        gt = to_tensor(read_image(sample / "gt" / name).rgb)
        sr = np.asarray(upscaler.upscale(lq, seed=0), dtype=np.float32) / 255
        cubic = resize(
            np.asarray(lq, dtype=np.float32) / 255, lq.width * 4, lq.height * 4, "bicubic", 8
        )
        with torch.no_grad():
            ours.append(lpips(to_tensor(sr), gt).item())
            bicubic.append(lpips(to_tensor(cubic), gt).item())
    assert np.mean(ours) < np.mean(bicubic)


def test_demo_runs_the_bundled_model(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out)]) == 0
    assert PIL.Image.open(out / "sample.png").size == (512, 600)
    assert "with model" in caplog.text and "gtasr-default.safetensors" in caplog.text
    (out / "sample.png").write_bytes(b"keep")
    caplog.clear()
    assert main(["demo", "-o", str(out)]) == 0  # an existing result is kept ...
    assert (out / "sample.png").read_bytes() == b"keep" and "--overwrite" in caplog.text
    assert "with model" not in caplog.text


def test_bundled_model_output_is_unchanged() -> None:
    """tests/infer/bundled_model_output.npz is the output of the bundled model v3.1 as
    shipped (sha256 5fc481ca...) on a 40x36 crop of the sample, seed 7, untiled: a change
    of the file, its reading or the network's code that moves a pixel shows here."""
    recorded = np.load(Path(__file__).with_name("bundled_model_output.npz"))
    upscaler = Upscaler.from_pretrained(device="cpu")
    now = upscaler.upscale(recorded["lr"], seed=7, tile=None)
    assert now.shape == recorded["sr"].shape == (144, 160, 3)
    assert float(np.abs(now - recorded["sr"]).max()) <= 1e-6
