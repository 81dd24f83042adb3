"""LPIPS v0.1 (Zhang et al., 2018) with an AlexNet or VGG16 trunk, in plain PyTorch.

Matches the official ``lpips.LPIPS(net=..., version="0.1")`` with its defaults:
the input scaling layer, channel-normalised activations of five layers, squared
differences weighted by the learned linear heads, averaged over space and
summed over layers.
"""

from __future__ import annotations

import os

import torch

from gtasr.perceptual.backbones import alexnet_trunk, vgg16_trunk
from gtasr.perceptual.frozen import FrozenMetric, check_pair
from gtasr.perceptual.weights import TAP_CHANNELS, find_weights, head_candidates, trunk_candidates

ARCHITECTURES = {"alex": "alexnet", "vgg": "vgg16"}
# The official scaling layer: maps [-1, 1] inputs to ImageNet-normalised ones.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


def unit_channels(features: torch.Tensor, dim: int = 1, eps: float = 1e-10) -> torch.Tensor:
    """Divide each spatial position's feature vector (along ``dim``) by its L2 norm (plus eps)."""
    norm = features.pow(2).sum(dim=dim, keepdim=True).sqrt()
    return features / (norm + eps)


class LPIPS(FrozenMetric):
    """Learned Perceptual Image Patch Similarity, ``forward(a, b) -> Tensor[B]``.

    Inputs are NCHW RGB in [-1, 1]. The weights are frozen (see
    :mod:`gtasr.perceptual.weights` for where they are looked up); gradients
    reach the inputs. Distances are computed in float32, also under autocast.
    """

    def __init__(self, net: str = "alex", weights_dir: str | os.PathLike[str] | None = None):
        super().__init__()
        if net not in ARCHITECTURES:
            raise ValueError(
                f"unknown LPIPS network {net!r}; choose one of {sorted(ARCHITECTURES)}"
            )
        arch = ARCHITECTURES[net]
        self.trunk = alexnet_trunk() if arch == "alexnet" else vgg16_trunk()
        self.channels = TAP_CHANNELS[arch]
        self.register_buffer("heads", torch.zeros(sum(self.channels)))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

        trunk_state, self.trunk_source = find_weights(
            f"the {arch} trunk", trunk_candidates(arch, weights_dir)
        )
        heads_state, self.heads_source = find_weights(
            f"the LPIPS-{net} linear heads", head_candidates(arch, weights_dir)
        )
        self.trunk.features.load_state_dict(trunk_state)
        self.heads.copy_(torch.cat([heads_state[str(i)] for i in range(len(self.channels))]))
        self.compute_dtype = torch.float32
        self.memory_format = torch.contiguous_format
        self.eval()

    def set_compute(self, dtype: torch.dtype, channels_last: bool = False) -> LPIPS:
        """Run the trunk in ``dtype`` and, with ``channels_last``, in NHWC memory format.

        The frozen weights are converted here, once. Under autocast they would be cast again on
        every call (autocast caches casts only for weights that require grad), and a training
        step calls LPIPS several times. The numbers are those of autocast: the same rounding of
        the same weights and inputs; distances are still computed in float32.
        """
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.trunk.to(dtype=dtype, memory_format=self.memory_format)
        self.compute_dtype = dtype
        return self

    def _taps(self, x: torch.Tensor, track: bool = True) -> list[torch.Tensor]:
        """Channel-normalised float32 activations of the five tapped layers, channels last.

        Each is an N x H x W x C view; for a channels-last trunk that is its memory as laid
        out, so the distance and its backward pass run on dense tensors. Reducing an NCHW
        view of channels-last memory instead hands the trunk's backward pass NCHW gradients,
        and every elementwise step that mixes the two layouts is many times slower on the CPU.
        ``track=False`` computes them without autograd (for a constant input).
        """
        with torch.set_grad_enabled(track and torch.is_grad_enabled()):
            scaled = ((x - self.shift) / self.scale).to(
                self.compute_dtype, memory_format=self.memory_format
            )
            return [
                unit_channels(f.float().permute(0, 2, 3, 1), dim=-1) for f in self.trunk(scaled)
            ]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-sample LPIPS distance between two batches in [-1, 1].

        Both batches go through the trunk together, except in training, where
        one side is a constant target: its activations are then computed
        without autograd, so the backward pass does not run through them.
        """
        check_pair(a, b)
        if torch.is_grad_enabled() and a.requires_grad != b.requires_grad:
            taps_a, taps_b = self._taps(a, a.requires_grad), self._taps(b, b.requires_grad)
        else:
            pairs = [t.chunk(2) for t in self._taps(torch.cat([a, b]))]
            taps_a, taps_b = ([p[0] for p in pairs], [p[1] for p in pairs])
        total = a.new_zeros(a.shape[0], dtype=torch.float32)
        heads = torch.split(self.heads, self.channels)
        for f_a, f_b, weight in zip(taps_a, taps_b, heads, strict=True):
            per_channel = (f_a - f_b).pow(2).mean(dim=(1, 2))
            total = total + (per_channel * weight).sum(dim=1)
        return total
