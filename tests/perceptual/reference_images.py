"""The fixed image pairs on which gtasr's LPIPS/DISTS are compared with the official code.

Shared by ``make_reference.py`` (run in a separate environment with the official
packages) and the tests, so both see bit-identical inputs. Needs only numpy and
Pillow. Images are float32 NCHW arrays in [0, 1].
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

# Real pairs: ImageNet-Test ground truth vs a Pillow-bicubic x4 upscale of its LR.
REAL_NAMES = (
    "ILSVRC2012_val_00000067.png",
    "ILSVRC2012_val_00000073.png",
    "ILSVRC2012_val_00000079.png",
)
CROP = 128  # centre crop, keeps the VGG-based tests fast
SYNTHETIC_SEEDS = (7, 11)
SYNTHETIC_SIZE = 64


def _to_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1) / 255.0


def bicubic_pair(root: Path, name: str, crop: int | None = CROP) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, bicubic upscale of the LR), each 3xHxW, optionally centre-cropped."""
    gt = Image.open(root / "imagenet-test-sample" / "gt" / name)
    lq = Image.open(root / "imagenet-test-sample" / "lq" / name)
    up = lq.convert("RGB").resize(gt.size, Image.BICUBIC)
    a, b = _to_array(gt), _to_array(up)
    if crop is not None:
        top = (a.shape[1] - crop) // 2
        left = (a.shape[2] - crop) // 2
        a = a[:, top : top + crop, left : left + crop]
        b = b[:, top : top + crop, left : left + crop]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def real_pairs(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The real pairs stacked into two (N, 3, CROP, CROP) batches."""
    pairs = [bicubic_pair(root, name) for name in REAL_NAMES]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def synthetic_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture and a noisy, slightly shifted copy, 3xSxS in [0, 1]."""
    rng = np.random.default_rng(seed)
    size = SYNTHETIC_SIZE
    coarse = rng.random((3, size // 8, size // 8))
    base = np.kron(coarse, np.ones((8, 8))) * 0.7 + rng.random((3, size, size)) * 0.3
    other = np.roll(base, shift=1, axis=2) + rng.normal(0.0, 0.08, size=base.shape)
    return base.clip(0, 1).astype(np.float32), other.clip(0, 1).astype(np.float32)


def synthetic_pairs() -> tuple[np.ndarray, np.ndarray]:
    """The synthetic pairs stacked into two (N, 3, S, S) batches."""
    pairs = [synthetic_pair(seed) for seed in SYNTHETIC_SEEDS]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def fingerprint(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' float32 bytes: proves both environments saw the same input."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]
