"""Perceptual and structural distances used by the GTASR objectives and evaluation.

LPIPS (AlexNet or VGG16) and DISTS are pure PyTorch re-implementations that
match the official packages; their pretrained weights are looked up offline
(see :mod:`gtasr.perceptual.weights`). Charbonnier and the Sobel magnitude are
the pixel-level terms.
"""

from gtasr.perceptual.dists import DISTS
from gtasr.perceptual.lpips import LPIPS
from gtasr.perceptual.pixel import charbonnier, sobel_magnitude
from gtasr.perceptual.weights import WeightsNotFoundError

__all__ = ["DISTS", "LPIPS", "WeightsNotFoundError", "charbonnier", "sobel_magnitude"]
