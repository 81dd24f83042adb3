"""JPEG compression artefacts through a real codec (Pillow / libjpeg), per image.

Why a real codec rather than a DCT re-implementation in torch (the release's
``DiffJPEG``): on the CPU, at the 256-384 px where the first JPEG of the
pipeline runs, libjpeg's encode and decode cost less than a batched torch
DCT; the codec is also exact (libjpeg's tables, rounding and chroma filtering
are those of the files people upscale) and leaves no table code to maintain.
The price is a host round trip for tensors on a GPU, small next to a training
step. Quality is rounded to an integer, as codecs take it.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

JPEG_THREADS = 2


def jpeg_roundtrip_uint8(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode an ``HxWx3`` uint8 image as JPEG at ``quality`` (1-100, 4:2:0) and decode it."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.array(decoded.convert("RGB"))


def jpeg_compress(images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG-compress each image of a ``[B, 3, H, W]`` batch in [0, 1] at its own quality.

    The input is clamped to [0, 1] and rounded to 8 bit first (a codec's input);
    the output is on the input's device and dtype, a multiple of 1/255.
    """
    if quality.numel() != images.shape[0]:
        raise ValueError("one JPEG quality per image is needed")
    pixels = torch.clamp(torch.round(images.detach() * 255.0), 0, 255).to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    levels = torch.round(quality.detach().cpu().double()).clamp(1, 100).to(torch.int64).tolist()
    # The codec releases the GIL: two threads use both cores of a small machine.
    with ThreadPoolExecutor(max_workers=min(JPEG_THREADS, len(levels))) as pool:
        decoded = np.stack(list(pool.map(jpeg_roundtrip_uint8, pixels, levels)))
    out = torch.from_numpy(decoded).permute(0, 3, 1, 2)
    return out.to(device=images.device, dtype=images.dtype) / 255.0
