"""The Python API: loading, kinds of images in and out, seeds, threads, steps, precision."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from gtasr.errors import GtasrError
from gtasr.infer.upscaler import Upscaler


@pytest.fixture(scope="module")
def upscaler(tiny_model_file: Path) -> Upscaler:
    return Upscaler.from_pretrained(tiny_model_file, device="cpu")


def _rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)


def test_missing_model_file_and_bad_device(tmp_path: Path, tiny_model_file: Path) -> None:
    with pytest.raises(GtasrError, match="model file not found"):
        Upscaler.from_pretrained(tmp_path / "none.safetensors", device="cpu")
    with pytest.raises(GtasrError, match="unknown device 'gpu0'"):
        Upscaler.from_pretrained(tiny_model_file, device="gpu0")


def test_numpy_kinds_round_trip(upscaler: Upscaler) -> None:
    rgb8 = (_rgb(8, 12) * 255).astype(np.uint8)
    out8 = upscaler.upscale(rgb8)
    assert out8.dtype == np.uint8 and out8.shape == (32, 48, 3)
    out16 = upscaler.upscale(rgb8.astype(np.uint16) * 257)
    assert out16.dtype == np.uint16 and out16.shape == (32, 48, 3)
    # the same picture at 16 bits gives the 8-bit result within a level
    assert np.abs(out16 / 257.0 - out8).max() <= 1.0
    outf = upscaler.upscale(rgb8.astype(np.float64) / 255)
    assert outf.dtype == np.float64 and outf.min() >= 0 and outf.max() <= 1
    np.testing.assert_allclose(outf * 255, out8, atol=0.51)
    gray = upscaler.upscale(rgb8[..., 0])
    assert gray.shape == (32, 48) and gray.dtype == np.uint8
    rgba = np.concatenate([rgb8, np.full((8, 12, 1), 200, np.uint8)], axis=-1)
    out_rgba = upscaler.upscale(rgba)
    assert out_rgba.shape == (32, 48, 4)
    np.testing.assert_array_equal(out_rgba[..., :3], out8)
    assert np.all(out_rgba[..., 3] == 200)


def test_pil_modes_round_trip(upscaler: Upscaler) -> None:
    rgb = PIL.Image.fromarray((_rgb(8, 8, 1) * 255).astype(np.uint8))
    for mode in ("RGB", "L", "RGBA", "LA", "P"):
        out = upscaler.upscale(rgb.convert(mode))
        assert out.size == (32, 32)
        assert out.mode == {"P": "RGB"}.get(mode, mode)
    sixteen = PIL.Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16))
    assert upscaler.upscale(sixteen).mode.startswith("I;16")


def test_seed_makes_the_output_reproducible(upscaler: Upscaler) -> None:
    rgb = _rgb(8, 8, 2)
    first = upscaler.upscale(rgb, seed=3)
    np.testing.assert_array_equal(upscaler.upscale(rgb, seed=3), first)
    assert np.abs(upscaler.upscale(rgb, seed=4) - first).max() > 1e-3


def test_one_upscaler_serves_several_threads(upscaler: Upscaler) -> None:
    images = [_rgb(8, 12, seed) for seed in range(3)]
    serial = [upscaler.upscale(image, seed=i) for i, image in enumerate(images)]
    results: dict[int, np.ndarray] = {}

    def work(index: int) -> None:
        results[index] = upscaler.upscale(images[index], seed=index)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, expected in enumerate(serial):
        np.testing.assert_array_equal(results[index], expected)


def test_multistep_sampling(upscaler: Upscaler) -> None:
    rgb = _rgb(8, 8, 5)
    one = upscaler.upscale(rgb, steps=1)
    four = upscaler.upscale(rgb, steps=4)
    assert four.shape == one.shape and np.abs(four - one).max() > 1e-3
    np.testing.assert_array_equal(upscaler.upscale(rgb, steps=4), four)
    with pytest.raises(GtasrError, match="steps"):
        upscaler.upscale(rgb, steps=0)


def test_bf16_is_close_to_fp32(tiny_model_file: Path, upscaler: Upscaler) -> None:
    rgb = _rgb(8, 8, 6)
    bf16 = Upscaler.from_pretrained(tiny_model_file, device="cpu", precision="bf16")
    reference = upscaler.upscale(rgb)
    reduced = bf16.upscale(rgb)
    assert reduced.dtype == np.float32
    psnr = 10 * np.log10(1.0 / np.mean((reduced - reference) ** 2))
    assert 35 <= psnr < 200


def test_tensor_api_checks_shape(upscaler: Upscaler) -> None:
    with pytest.raises(ValueError, match="Tensor"):
        upscaler.upscale_tensor(torch.zeros(3, 8, 8))


class DoublingBackbone(torch.nn.Module):
    """A x2 backbone (1x1 convolution of the noisy state): scale 2, stride 1."""

    scale, stride = 2, 1

    def __init__(self) -> None:
        super().__init__()
        self.mix = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.mix(x)


def test_the_models_scale_sizes_colour_and_alpha(tmp_path: Path) -> None:
    from gtasr.imageio import Image
    from gtasr.infer.backends import TorchDenoiser
    from gtasr.infer.batch import UpscaleOptions, upscale_image
    from gtasr.method.precond import ConsistencyModel

    model = ConsistencyModel(DoublingBackbone())
    upscaler = Upscaler(TorchDenoiser(model, torch.device("cpu")))
    image = Image(_rgb(6, 5), np.full((6, 5), 0.5, np.float32), False, 8, "PNG")
    result = upscale_image(image, UpscaleOptions(out_dir=tmp_path, outscale=2), upscaler)
    assert result.rgb.shape == (12, 10, 3) and result.alpha.shape == (12, 10)
    np.testing.assert_allclose(result.alpha, 0.5, atol=1e-6)


def test_arrays_with_nan_or_no_pixels_are_refused(upscaler: Upscaler) -> None:
    with pytest.raises(GtasrError, match="NaN or infinite"):
        upscaler.upscale(np.full((6, 6, 3), np.nan, np.float32))
    with pytest.raises(GtasrError, match="NaN or infinite"):
        upscaler.upscale(np.full((6, 6), np.inf, np.float64))
    with pytest.raises(GtasrError, match=r"empty \(5x0 pixels\)"):
        upscaler.upscale(np.zeros((0, 5), np.uint8))
    with pytest.raises(GtasrError, match=r"seed must be a whole number within 0\.\.2"):
        upscaler.upscale(np.zeros((6, 6, 3), np.uint8), seed=2**64)
