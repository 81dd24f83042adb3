"""A seeded Gaussian noise field over the whole HR canvas, cut into tiles on demand.

The sampler starts from ``x_T = y0 + eps`` (METHOD §6), so the output depends on
``eps``. For tiled inference to match untiled inference, every tile must see
the same ``eps`` at the same canvas pixel. Holding the field for a large
canvas costs as much memory as the output, so the field is defined
procedurally instead: the canvas is divided into fixed square blocks, and
each block's values come from its own generator, seeded from the user's seed,
the sampling step and the block's position. Any crop of the field is thus the
same whether it is drawn for one tile or for the full image, and a pixel's
noise does not depend on the image size.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from gtasr.choices import MAX_SEED
from gtasr.errors import GtasrError

BLOCK = 128
"""Side of the square noise blocks, in HR pixels."""

_MASK64 = (1 << 64) - 1


def _splitmix64(value: int) -> int:
    """One round of the SplitMix64 mixer: nearby inputs give unrelated outputs."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def block_seed(seed: int, step: int, block_row: int, block_col: int) -> int:
    """A 63-bit generator seed for one block of the field of ``seed`` at sampling ``step``."""
    mixed = _splitmix64(int(seed) & _MASK64)
    for part in (step, block_row, block_col):
        mixed = _splitmix64(mixed ^ (int(part) & _MASK64))
    return mixed >> 1


def image_seed(seed: int, name: str) -> int:
    """The seed of one file of a batch: ``seed`` mixed with its path relative to its input root.

    ``name`` is that path with ``/`` separators (``photo.png``, ``trip/photo.png``). The
    result depends on nothing else, so a file gets the same noise whichever process,
    machine or position in the batch upscales it, and two files of one batch get
    independent noise. Within 0..2**63-1 like every seed.
    """
    digest = hashlib.blake2b(name.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return _splitmix64((int(seed) & _MASK64) ^ int.from_bytes(digest, "little")) >> 1


class NoiseField:
    """Standard normal noise, ``channels`` deep, defined on an unbounded HR canvas.

    ``step`` selects an independent field for each step of multi-step sampling.
    Instances hold only integers, so one can be shared between threads.
    """

    def __init__(self, seed: int, channels: int = 3, block: int = BLOCK) -> None:
        if isinstance(seed, bool) or not 0 <= int(seed) <= MAX_SEED:
            raise GtasrError(f"seed must be a whole number within 0..2**63-1, not {seed!r}")
        self.seed = int(seed)
        self.channels = int(channels)
        self.block = int(block)

    def _block(self, step: int, block_row: int, block_col: int) -> Tensor:
        generator = torch.Generator(device="cpu")
        generator.manual_seed(block_seed(self.seed, step, block_row, block_col))
        return torch.randn(
            (self.channels, self.block, self.block), generator=generator, dtype=torch.float32
        )

    def crop(self, top: int, left: int, height: int, width: int, step: int = 0) -> Tensor:
        """Field values in rows [top, top + h) and columns [left, left + w): Tensor[1, C, h, w]."""
        if top < 0 or left < 0 or height <= 0 or width <= 0:
            raise ValueError(f"bad crop {top},{left},{height}x{width}")
        out = torch.empty((1, self.channels, height, width), dtype=torch.float32)
        b = self.block
        for block_row in range(top // b, (top + height - 1) // b + 1):
            row0 = max(top, block_row * b)
            row1 = min(top + height, (block_row + 1) * b)
            for block_col in range(left // b, (left + width - 1) // b + 1):
                col0 = max(left, block_col * b)
                col1 = min(left + width, (block_col + 1) * b)
                values = self._block(step, block_row, block_col)
                out[0, :, row0 - top : row1 - top, col0 - left : col1 - left] = values[
                    :,
                    row0 - block_row * b : row1 - block_row * b,
                    col0 - block_col * b : col1 - block_col * b,
                ]
        return out


class FixedNoise:
    """A given noise tensor laid over the padded HR canvas, cut like a :class:`NoiseField`.

    For reproducing a run whose noise is known (the authors' pipeline draws it
    for the whole padded canvas at once). It serves one-step sampling only.
    """

    def __init__(self, noise: Tensor) -> None:
        if noise.dim() != 4 or noise.shape[0] != 1:
            raise ValueError(f"noise must be a Tensor[1, C, H, W], got {tuple(noise.shape)}")
        self.noise = noise.detach().float().cpu()

    def crop(self, top: int, left: int, height: int, width: int, step: int = 0) -> Tensor:
        """Rows [top, top + h) and columns [left, left + w) of the tensor: Tensor[1, C, h, w]."""
        full_h, full_w = self.noise.shape[-2:]
        if top + height > full_h or left + width > full_w:
            raise ValueError(
                f"noise of size {full_h}x{full_w} does not cover the padded HR canvas "
                f"({top + height}x{left + width} needed)"
            )
        return self.noise[..., top : top + height, left : left + width]
