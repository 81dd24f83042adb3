"""The release's test-time pipeline for release models: the authors' pixels, tiled at 64."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

from gtasr.cli import main
from gtasr.infer.noise import image_seed
from gtasr.infer.upscaler import Upscaler


@pytest.fixture(scope="module")
def upscaler(release_small: Path) -> Upscaler:
    return Upscaler.from_pretrained(release_small, device="cpu")


def test_release_pipeline_reproduces_the_authors_pixels(
    upscaler: Upscaler, reference: Path
) -> None:
    noise = load_file(str(reference / "pipeline_reference.safetensors"))["noise"]
    lr = PIL.Image.open(reference / "pipeline_lr.png")
    ours = np.asarray(upscaler.upscale(lr, noise=noise), dtype=np.int16)
    theirs = np.asarray(PIL.Image.open(reference / "pipeline_sr.png"), dtype=np.int16)
    assert ours.shape == theirs.shape == (212, 280, 3)
    difference = np.abs(ours - theirs)
    assert (difference == 0).mean() >= 0.999
    assert difference.max() <= 1


class _Recording:
    """A denoiser that notes the LR size of every call."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.scale, self.stride = inner.scale, inner.stride
        self.sizes: list[tuple[int, ...]] = []

    def __call__(self, x: torch.Tensor, sigma: float, y: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(y.shape[-2:]))
        return self.inner(x, sigma, y)


def test_release_models_pad_and_tile_at_multiples_of_64(
    upscaler: Upscaler, reference: Path
) -> None:
    assert (upscaler.family, upscaler.stride) == ("release", 64)
    recording = _Recording(upscaler.denoiser)
    tiled = Upscaler(recording, family="release")  # type: ignore[arg-type]
    rgb = np.asarray(PIL.Image.open(reference / "pipeline_lr.png"), dtype=np.float32) / 255
    wide = np.concatenate([rgb, rgb[:, ::-1]] * 4, axis=1)[:, :260]
    assert wide.shape[:2] == (53, 260)
    out = tiled.upscale_rgb(wide, seed=1, tile=200, tile_overlap=16)
    assert out.shape == (212, 1040, 3) and np.isfinite(out).all()
    # 53x260 padded to 64x320; tiles of 192 (200 rounded down), overlap 64 (16 rounded up)
    assert recording.sizes == [(64, 192), (64, 192)]


def test_explicit_noise_is_for_one_step_over_the_padded_canvas(
    upscaler: Upscaler, reference: Path
) -> None:
    rgb = np.zeros((53, 70, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="one-step"):
        upscaler.upscale_rgb(rgb, noise=torch.zeros(1, 3, 256, 512), steps=2)
    with pytest.raises(ValueError, match="does not cover the padded HR canvas"):
        upscaler.upscale_rgb(rgb, noise=torch.zeros(1, 3, 212, 280))


def test_cli_upscales_with_a_release_file_and_seed(
    release_small: Path, reference: Path, tmp_path: Path, upscaler: Upscaler
) -> None:
    out = tmp_path / "out"
    source = reference / "pipeline_lr.png"
    args = ["upscale", str(source), "-o", str(out), "--model", str(release_small), "--seed", "5"]
    assert main([*args, "--device", "cpu"]) == 0
    written = np.asarray(PIL.Image.open(out / "pipeline_lr.png"))
    expected = upscaler.upscale(PIL.Image.open(source), seed=image_seed(5, source.name))
    assert np.array_equal(written, np.asarray(expected))


def test_demo_takes_a_release_file(release_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--model", str(release_small), "--weights", "raw"]) == 0
    assert PIL.Image.open(out / "sample.png").size == (512, 600)
