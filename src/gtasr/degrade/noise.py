"""Sensor-like noise of the Real-ESRGAN degradation: Gaussian and Poisson (shot).

Images are float tensors ``[B, 3, H, W]`` in [0, 1]. Per sample, a strength is
drawn from the given range and, with probability ``gray_prob``, the noise is the
same in the three channels ("gray noise"). All draws use the explicit
``torch.Generator`` passed in, which must live on the images' device.
"""

from __future__ import annotations

import torch

# ITU-R BT.601 luma weights, as used for the gray Poisson noise.
_LUMA = (0.299, 0.587, 0.114)


def _uniform(
    batch: int, low: float, high: float, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    draw = torch.rand(batch, generator=generator, device=like.device, dtype=like.dtype)
    return low + (high - low) * draw


def _gray_mask(batch: int, gray_prob: float, generator: torch.Generator, like: torch.Tensor):
    draw = torch.rand(batch, generator=generator, device=like.device, dtype=like.dtype)
    return (draw < gray_prob).to(like.dtype).view(batch, 1, 1, 1)


def add_gaussian_noise(
    images: torch.Tensor,
    sigma_range: tuple[float, float],
    gray_prob: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Add N(0, sigma^2) noise, sigma drawn per sample in ``sigma_range`` (8-bit units); clip."""
    b, c, h, w = images.shape
    sigma = _uniform(b, *sigma_range, generator, images) / 255.0
    gray = _gray_mask(b, gray_prob, generator, images).view(b).tolist()
    out = torch.empty_like(images)
    for i in range(b):
        # Gray noise: one field shared by the channels; colour noise: one per channel.
        field = torch.randn(
            (1 if gray[i] else c, h, w), generator=generator, device=images.device
        ).to(images.dtype)
        torch.add(images[i], field, alpha=float(sigma[i]), out=out[i])
    return out.clamp_(0, 1)


def _shot_noise(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Poisson noise of each image counted at its number of grey levels.

    As in the release, the photon count per unit intensity is the number of
    distinct 8-bit values in the image rounded up to a power of two.
    """
    codes = torch.clamp(torch.round(images * 255.0), 0, 255)
    quantised = codes / 255.0
    b = images.shape[0]
    present = torch.zeros((b, 256), dtype=torch.bool, device=images.device)
    present.scatter_(1, codes.long().reshape(b, -1), True)
    levels = present.sum(dim=1).clamp(min=1).to(images.dtype)
    vals = torch.exp2(torch.ceil(torch.log2(levels))).view(b, 1, 1, 1)
    counts = torch.poisson(quantised * vals, generator=generator)
    return counts / vals - quantised


def add_poisson_noise(
    images: torch.Tensor,
    scale_range: tuple[float, float],
    gray_prob: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Add shot noise scaled by a per-sample factor in ``scale_range``; clip."""
    b = images.shape[0]
    scale = _uniform(b, *scale_range, generator, images).view(b, 1, 1, 1)
    gray = _gray_mask(b, gray_prob, generator, images)
    noise = _shot_noise(images, generator)
    if bool(gray.any()):
        weights = torch.tensor(_LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        luma = (images * weights).sum(dim=1, keepdim=True)
        noise = noise * (1 - gray) + _shot_noise(luma, generator) * gray
    return torch.clamp(images + noise * scale, 0, 1)
