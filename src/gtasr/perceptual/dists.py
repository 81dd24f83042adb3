"""DISTS (Ding et al., 2020): structure and texture similarity of VGG16 features.

Matches the official ``DISTS_pytorch.DISTS()``: a VGG16 trunk with L2 pooling
in place of max pooling, ImageNet normalisation, and per-channel luminance (S1)
and structure (S2) terms of the input and five stages, weighted by the learned
alpha and beta (normalised to sum to one together).
"""

from __future__ import annotations

import os

import torch

from gtasr.perceptual.backbones import L2Pooling, vgg16_trunk
from gtasr.perceptual.frozen import FrozenMetric, check_pair
from gtasr.perceptual.weights import (
    DISTS_CHANNELS,
    dists_candidates,
    find_weights,
    trunk_candidates,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
C1 = 1e-6
C2 = 1e-6


class DISTS(FrozenMetric):
    """Deep Image Structure and Texture Similarity, ``forward(a, b) -> Tensor[B]``.

    Inputs are NCHW RGB in [-1, 1] (the official model takes [0, 1]; we map
    them). Weights are frozen; gradients reach the inputs. The statistics are
    computed in float32, also under autocast.
    """

    def __init__(self, weights_dir: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.trunk = vgg16_trunk(pool=L2Pooling)
        size = (1, sum(DISTS_CHANNELS), 1, 1)
        self.register_buffer("alpha", torch.zeros(size))
        self.register_buffer("beta", torch.zeros(size))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        trunk_state, self.trunk_source = find_weights(
            "the vgg16 trunk", trunk_candidates("vgg16", weights_dir)
        )
        weights, self.weights_source = find_weights(
            "the DISTS alpha/beta", dists_candidates(weights_dir)
        )
        self.trunk.features.load_state_dict(trunk_state)
        self.alpha.copy_(weights["alpha"])
        self.beta.copy_(weights["beta"])
        self.eval()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-sample DISTS distance between two batches in [-1, 1]."""
        check_pair(a, b)
        both = (torch.cat([a, b]) + 1) / 2
        stages = [both, *self.trunk((both - self.mean) / self.std)]
        total_weight = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha.flatten() / total_weight, DISTS_CHANNELS)
        betas = torch.split(self.beta.flatten() / total_weight, DISTS_CHANNELS)
        similarity = a.new_zeros(a.shape[0], dtype=torch.float32)
        for features, alpha, beta in zip(stages, alphas, betas, strict=True):
            f_a, f_b = features.float().chunk(2)
            mean_a, mean_b = f_a.mean(dim=(2, 3)), f_b.mean(dim=(2, 3))
            var_a = (f_a - mean_a[..., None, None]).pow(2).mean(dim=(2, 3))
            var_b = (f_b - mean_b[..., None, None]).pow(2).mean(dim=(2, 3))
            cov = (f_a * f_b).mean(dim=(2, 3)) - mean_a * mean_b
            luminance = (2 * mean_a * mean_b + C1) / (mean_a**2 + mean_b**2 + C1)
            structure = (2 * cov + C2) / (var_a + var_b + C2)
            similarity = similarity + (luminance * alpha + structure * beta).sum(dim=1)
        return 1 - similarity
