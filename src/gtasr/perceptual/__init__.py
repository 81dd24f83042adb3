"""Perceptual and structural distances used by the GTASR objectives and evaluation.

LPIPS (AlexNet or VGG16) and DISTS are pure PyTorch re-implementations that
match the official packages; their pretrained weights are looked up offline
(see :mod:`gtasr.perceptual.weights`). Charbonnier and the Sobel magnitude are
the pixel-level terms. The names load on first use, so that the command line's
``fetch-weights`` (:mod:`gtasr.perceptual.commands`) does not import PyTorch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["DISTS", "LPIPS", "WeightsNotFoundError", "charbonnier", "sobel_magnitude"]
_HOMES = {
    "DISTS": "gtasr.perceptual.dists",
    "LPIPS": "gtasr.perceptual.lpips",
    "WeightsNotFoundError": "gtasr.perceptual.weights",
    "charbonnier": "gtasr.perceptual.pixel",
    "sobel_magnitude": "gtasr.perceptual.pixel",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'gtasr.perceptual' has no attribute {name!r}")
