"""Classical resampling: the bicubic/Lanczos baselines and ``--outscale`` resizing.

Pillow does the work so the baselines are the field's usual "Pillow bicubic".
8-bit images go through Pillow's 8-bit path (exactly what resizing the file
in Pillow gives); 16-bit images are resized channel by channel in float
("F" mode) so no precision is lost.
"""

from __future__ import annotations

import numpy as np
import PIL.Image

from gtasr.imageio import quantize

FILTERS = {
    "bicubic": PIL.Image.Resampling.BICUBIC,
    "lanczos": PIL.Image.Resampling.LANCZOS,
}


def resize(values: np.ndarray, width: int, height: int, method: str, bit_depth: int) -> np.ndarray:
    """Resize float [0, 1] H x W or H x W x C ``values`` to ``height`` x ``width``.

    ``bit_depth`` 8 means the values are exact 8-bit levels (as read from an
    8-bit file): they are resized as 8-bit images. The result is float32 in [0, 1].
    """
    if method not in FILTERS:
        raise ValueError(f"unknown resampling method {method!r}")
    if width < 1 or height < 1:
        raise ValueError(f"target size {width}x{height} is empty")
    resample = FILTERS[method]
    planes = values[..., None] if values.ndim == 2 else values
    if bit_depth == 8 and planes.shape[-1] in (1, 3):
        samples = quantize(planes, 8)
        pil = PIL.Image.fromarray(samples[..., 0] if planes.shape[-1] == 1 else samples)
        out = np.asarray(pil.resize((width, height), resample))
        result = out.reshape(height, width, -1).astype(np.float32) / 255.0
    else:
        channels = [
            np.asarray(
                PIL.Image.fromarray(
                    np.ascontiguousarray(planes[..., c], dtype=np.float32), "F"
                ).resize((width, height), resample)
            )
            for c in range(planes.shape[-1])
        ]
        result = np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)
    return result[..., 0] if values.ndim == 2 else result
