"""The two-order degradation: shapes, 8-bit values, determinism, severity, and its parts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gtasr.degrade.jpeg import jpeg_compress
from gtasr.degrade.kernels import gaussian_kernel, identity_kernel, plateau_kernel, sinc_kernel
from gtasr.degrade.noise import add_gaussian_noise, add_poisson_noise
from gtasr.degrade.pipeline import DegradationConfig, blur, degrade_batch


def _textured(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images with edges, in [-1, 1] (a stand-in for photo crops)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, size // 8, size // 8, generator=gen)
    image = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    image = image + 0.3 * (torch.rand(batch, 1, size, size, generator=gen) > 0.5)
    return image.clamp(0, 1) * 2 - 1


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a - b) / 2).pow(2).mean().item()
    return 10 * math.log10(1 / mse)


@pytest.mark.parametrize("preset", ["train", "test"])
def test_outputs_have_lr_and_hr_shapes_and_8bit_values(preset):
    hr = _textured(3, 64)
    y, y0 = degrade_batch(hr, DegradationConfig.preset(preset), torch.Generator().manual_seed(1))
    assert y.shape == (3, 3, 16, 16) and y0.shape == (3, 3, 64, 64)
    for image in (y, y0):
        codes = (image + 1) * 127.5
        assert torch.allclose(codes, codes.round(), atol=1e-3)
        assert image.min() >= -1 and image.max() <= 1
    upsampled = F.interpolate(y, scale_factor=4, mode="bicubic", align_corners=False)
    expected = ((upsampled.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1
    torch.testing.assert_close(y0, expected, atol=1e-5, rtol=0)


def test_same_generator_state_gives_the_same_batch():
    hr = _textured(2, 64)
    config = DegradationConfig.train()
    a = degrade_batch(hr, config, torch.Generator().manual_seed(7))
    b = degrade_batch(hr, config, torch.Generator().manual_seed(7))
    c = degrade_batch(hr, config, torch.Generator().manual_seed(8))
    torch.testing.assert_close(a[0], b[0], atol=0, rtol=0)
    torch.testing.assert_close(a[1], b[1], atol=0, rtol=0)
    assert not torch.equal(a[0], c[0])


def test_test_preset_is_milder_than_training():
    hr = _textured(8, 64, seed=3)
    scores = {}
    for preset in ("train", "test"):
        config = DegradationConfig.preset(preset)
        psnrs = []
        for seed in range(3):
            _, y0 = degrade_batch(hr, config, torch.Generator().manual_seed(seed))
            psnrs.append(_psnr(y0, hr))
        scores[preset] = np.mean(psnrs)
    assert scores["test"] > scores["train"] + 1.0


def test_hr_size_must_be_a_multiple_of_the_scale():
    with pytest.raises(ValueError):
        degrade_batch(torch.zeros(1, 3, 30, 32), DegradationConfig.test(), torch.Generator())


def test_unknown_preset_is_rejected():
    assert DegradationConfig.preset("test") == DegradationConfig.test()
    with pytest.raises(ValueError):
        DegradationConfig.preset("harsh")


def test_release_defaults():
    config = DegradationConfig()
    assert config.first_blur.kernel_sizes == tuple(range(3, 21, 2))
    assert config.second_blur.kernel_sizes == tuple(range(3, 15, 2))
    assert config.first_resize.scale_range == (0.15, 1.5)
    assert config.second_resize.probs == (0.3, 0.4, 0.3)
    assert config.first_noise.sigma_range == (1.0, 30.0)
    assert config.second_noise.poisson_scale_range == (0.05, 2.5)
    assert (config.second_order_prob, config.second_blur_prob) == (0.5, 0.8)
    assert config.final_sinc_prob == 0.8


def test_fft_blur_equals_direct_reflect_convolution():
    images = torch.rand(4, 3, 37, 50, dtype=torch.float64).float()
    kernels = [
        gaussian_kernel(7, 2.0, 0.7, 0.5),
        sinc_kernel(13, 1.2),
        plateau_kernel(21, 2.0, 1.5, 1.0, -0.7),
        identity_kernel(),
    ]
    out = blur(images, kernels)
    for image, kernel, result in zip(images, kernels, out, strict=True):
        pad = kernel.shape[0] // 2
        weight = torch.tensor(kernel.copy(), dtype=torch.float32)[None, None]
        padded = F.pad(image[:, None], (pad,) * 4, mode="reflect") if pad else image[:, None]
        expected = F.conv2d(padded, weight)[:, 0]
        torch.testing.assert_close(result, expected, atol=2e-6, rtol=0)


def test_gaussian_noise_strength_and_gray_noise():
    flat = torch.full((2, 3, 128, 128), 0.5)
    gen = torch.Generator().manual_seed(0)
    noisy = add_gaussian_noise(flat, (12.0, 12.0), 0.0, gen)
    assert (noisy - flat).std().item() == pytest.approx(12 / 255, rel=0.03)
    gray = add_gaussian_noise(flat, (12.0, 12.0), 1.0, gen)
    torch.testing.assert_close(gray[:, 0], gray[:, 2])
    assert not torch.equal(noisy[:, 0], noisy[:, 2])


def test_poisson_noise_is_signal_dependent_and_unbiased():
    gen = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, 256).repeat(2, 3, 256, 1)  # 256 grey levels -> 256 counts/unit
    noisy = add_poisson_noise(ramp, (1.0, 1.0), 0.0, gen)
    diff = noisy - ramp
    # Shot noise has variance x / 256 at intensity x (256 counts per unit here).
    for band in (slice(2, 12), slice(200, 240)):
        expected = ramp[..., band].mean().item() / 256
        assert diff[..., band].var().item() == pytest.approx(expected, rel=0.15)
    assert diff[..., 200:240].var() > 10 * diff[..., 2:12].var()
    assert abs(diff[..., 100:180].mean().item()) < 2e-3
    gray = add_poisson_noise(ramp, (1.0, 1.0), 1.0, gen)
    torch.testing.assert_close(gray[:, 0] - ramp[:, 0], gray[:, 1] - ramp[:, 1])
    strided = add_poisson_noise(ramp.transpose(-1, -2), (1.0, 1.0), 0.5, gen)  # non-contiguous
    assert strided.shape == ramp.shape


def test_jpeg_quality_orders_the_error():
    image = (_textured(2, 64, seed=5) + 1) / 2
    errors = []
    for quality in (20, 60, 95):
        out = jpeg_compress(image, torch.full((2,), float(quality)))
        assert out.shape == image.shape
        codes = out * 255
        assert torch.allclose(codes, codes.round(), atol=1e-4)
        errors.append((out - image).abs().mean().item())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.03
    with pytest.raises(ValueError):
        jpeg_compress(image, torch.tensor([50.0]))


def test_jpeg_and_real_presets_are_the_test_recipe_with_a_second_jpeg() -> None:
    """Same draws as ``test`` up to the end; then ``jpeg`` recompresses every image (quality
    20-50: visibly more loss) and ``real`` about half of them, leaving the rest as ``test``."""
    hr = torch.nn.functional.avg_pool2d(torch.rand(16, 3, 64, 64) * 2 - 1, 3, 1, 1)
    outputs = {
        name: degrade_batch(hr, DegradationConfig.preset(name), torch.Generator().manual_seed(3))
        for name in ("test", "jpeg", "real")
    }
    test_y, jpeg_y, real_y = (outputs[name][0] for name in ("test", "jpeg", "real"))
    per_image = (jpeg_y - test_y).abs().flatten(1).mean(1)
    assert bool((per_image > 0).all())
    changed = (real_y - test_y).abs().flatten(1).amax(1) > 0
    assert 3 <= int(changed.sum()) <= 13
    assert torch.equal(real_y[~changed], test_y[~changed])
    area = F.interpolate(hr, scale_factor=0.25, mode="area")
    assert float((jpeg_y - area).abs().mean()) > float((test_y - area).abs().mean())
