"""The distance d of the consistency terms (METHOD §4): LPIPS-VGG plus Charbonnier.

``d(a, b) = lpips_weight * LPIPS(a, b) + charbonnier_weight * Charbonnier(a, b)``, one value
per sample. The LPIPS network is handed in (loaded once by whoever builds the loss), so
the method does not depend on where the perceptual weights come from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gtasr.perceptual.pixel import charbonnier


@dataclass
class PerceptualDistance:
    """d(a, b) per sample; ``lpips`` may be None when ``lpips_weight`` is 0."""

    lpips: nn.Module | None
    lpips_weight: float = 0.5
    charbonnier_weight: float = 0.5

    def terms(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted parts ``{"charbonnier", "lpips"}`` of d, each Tensor[B]: the training
        log shows each."""
        parts = {"charbonnier": self.charbonnier_weight * charbonnier(a, b)}
        if self.lpips is not None and self.lpips_weight:
            parts["lpips"] = self.lpips_weight * self.lpips(a, b).reshape(a.shape[0])
        return parts

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.stack(list(self.terms(a, b).values())).sum(dim=0)
