"""Image files in and out: one float RGB array per image, whatever the file held.

Reading normalises every file to an :class:`Image`: float32 RGB in [0, 1] (a
grayscale picture is replicated to three channels and remembered as such),
the alpha channel kept separately, the bit depth (8 or 16) and the EXIF
orientation already applied. Writing does the reverse, so a 16-bit grayscale
PNG with alpha comes back out as one. Pillow reads and writes 8-bit files;
16-bit colour PNG and TIFF, which Pillow would cut to 8 bits, go through
``pypng`` and ``tifffile``.

Every problem with an input file (missing, not an image, truncated, too many
pixels, an unsupported pixel format) raises :class:`InputError` naming it.
The pixel count is checked from the header, before any pixel is decoded, so a
small file claiming a huge canvas (a decompression bomb) costs no memory.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import PIL.Image

from gtasr.errors import GtasrError, InputError, OutputError
from gtasr.fileio import atomic_path

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_EIGHT_BIT_ONLY = (".jpg", ".jpeg", ".webp", ".bmp")
_PIL_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_ORIENTATION_TAG = 0x0112
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class Image:
    """A decoded image: what the upscaler works on, plus what writing needs back."""

    rgb: np.ndarray
    """float32 H x W x 3 in [0, 1]; grayscale images hold three equal channels."""
    alpha: np.ndarray | None
    """float32 H x W in [0, 1], or None for opaque images."""
    grayscale: bool
    bit_depth: int
    """8 or 16: the precision of the source samples (and of the output)."""
    source_format: str
    """Pillow's name of the file format, e.g. ``"PNG"`` or ``"JPEG"``."""

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def default_max_pixels() -> int:
    """The pixel limit used when the caller gives none (Pillow's bomb threshold)."""
    return int(PIL.Image.MAX_IMAGE_PIXELS or 89_478_485)


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Image:
    """Decode ``path`` into an :class:`Image`; any problem raises ``InputError(path, ...)``.

    ``max_pixels`` (default: :func:`default_max_pixels`) bounds width x height;
    it is checked from the header before decoding.
    """
    file = Path(path)
    if not file.exists():
        raise InputError(file, "file not found")
    if not file.is_file():
        raise InputError(file, "not a file")
    limit = default_max_pixels() if max_pixels is None else int(max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with _open_within(file, limit) as pil:
                _check_size(file, pil.size, limit)
                _warn_if_animated(file, pil)
                orientation = _orientation(pil)
                image = _decode(file, pil)
    except InputError:
        raise
    except PIL.Image.DecompressionBombError as error:
        raise InputError(file, f"too many pixels to decode safely ({error})") from error
    except PIL.UnidentifiedImageError as error:
        raise InputError(file, _unidentified(file)) from error
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as error:
        raise InputError(file, f"damaged or truncated image ({error})") from error
    except Exception as error:  # pypng and tifffile raise their own exception types
        raise InputError(file, f"cannot decode image ({type(error).__name__}: {error})") from error
    return _apply_orientation(image, orientation)


_PILLOW_LIMIT = threading.Lock()


def _open_within(file: Path, limit: int) -> PIL.Image.Image:
    """``PIL.Image.open`` whose own bomb check (at twice ``MAX_IMAGE_PIXELS``) does not
    override a larger ``limit``: gtasr checks the header against ``limit`` itself."""
    bound = PIL.Image.MAX_IMAGE_PIXELS
    if bound is None or limit <= 2 * bound:
        return PIL.Image.open(file)
    with _PILLOW_LIMIT:
        PIL.Image.MAX_IMAGE_PIXELS = max(bound, limit)
        try:
            return PIL.Image.open(file)
        finally:
            PIL.Image.MAX_IMAGE_PIXELS = bound


def _check_size(file: Path, size: tuple[int, int], limit: int) -> None:
    """Reject empty canvases and canvases over ``limit`` pixels (header only)."""
    width, height = size
    if width <= 0 or height <= 0:
        raise InputError(file, f"empty image ({width}x{height})")
    if width * height > limit:
        raise TooManyPixels(file, (width, height), limit)


class TooManyPixels(InputError):
    """An image over the pixel limit; ``size`` and ``limit`` let each front end say it in
    its own words (the command line names its flag, the web page its own limit)."""

    def __init__(self, path: object, size: tuple[int, int], limit: int) -> None:
        self.size, self.limit = size, limit
        width, height = size
        super().__init__(
            path,
            f"{width}x{height} is {width * height} pixels, over the limit of {limit} "
            "(raise it with --max-pixels)",
        )


def _unidentified(file: Path) -> str:
    """Why Pillow could not open ``file``: a TIFF whose samples it cannot read, or not an image."""
    with open(file, "rb") as handle:
        head = handle.read(4)
    if head not in (b"II*\0", b"MM\0*"):
        return "not a recognised image file"
    import tifffile

    try:
        with tifffile.TiffFile(file) as tif:
            page = tif.pages[0]
            kind = f"{page.dtype} samples ({len(page.shape)}-D {page.axes})"
    except Exception:  # a TIFF header over damaged contents
        return "damaged TIFF file"
    return f"TIFF with {kind} is not supported (8- and 16-bit integer samples are)"


def _warn_if_animated(file: Path, pil: PIL.Image.Image) -> None:
    """Say that only the first frame of an animation or a multi-page file is used."""
    frames = int(getattr(pil, "n_frames", 1) or 1)
    if frames > 1:
        log.warning("%s: has %d frames; only the first is used", file, frames)


def _orientation(pil: PIL.Image.Image) -> int:
    """The EXIF orientation tag (1..8), 1 when absent or unreadable."""
    try:
        value = int(pil.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a damaged EXIF block must not make the pixels unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _decode(file: Path, pil: PIL.Image.Image) -> Image:
    """Pick the decoder that keeps the file's precision."""
    fmt = pil.format or "unknown"
    if fmt == "PNG" and _png_bit_depth(file) == 16:
        return _decode_png16(file)
    if fmt == "TIFF":
        _refuse_wide_tiff(file, pil)
        if _tiff_is_16bit(pil):
            return _decode_tiff16(file)
    return _decode_pillow(file, pil, fmt)


_TIFF_PHOTOMETRIC = {0: "white-is-zero", 1: "grayscale", 2: "RGB", 3: "palette", 5: "CMYK"}
_TIFF_16BIT_READ = (0, 1, 2)
"""Photometric interpretations read exactly at 16 bits: inverted grayscale, grayscale, RGB."""


def _refuse_wide_tiff(file: Path, pil: PIL.Image.Image) -> None:
    """Samples of more than 16 integer bits have no exact 8/16-bit form: refuse them
    (clipping a 32-bit image to 65535 would turn most of it white)."""
    bits = pil.tag_v2.get(258, (8,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    formats = pil.tag_v2.get(339, (1,))
    formats = formats if isinstance(formats, tuple) else (formats,)
    if max(int(b) for b in bits) > 16 and 3 not in formats:  # 3: floats, refused later
        kind = "signed integer" if 2 in formats else "integer"
        raise InputError(
            file, f"{max(bits)}-bit {kind} samples are not supported (8- or 16-bit only)"
        )


def _png_bit_depth(file: Path) -> int:
    """Bit depth field of the PNG header (IHDR is always the first chunk)."""
    with open(file, "rb") as handle:
        header = handle.read(26)
    return header[24] if len(header) == 26 else 8


def _tiff_is_16bit(pil: PIL.Image.Image) -> bool:
    bits = pil.tag_v2.get(258, (8,))  # BitsPerSample
    bits = bits if isinstance(bits, tuple) else (bits,)
    return any(int(b) == 16 for b in bits)


def _decode_pillow(file: Path, pil: PIL.Image.Image, fmt: str) -> Image:
    """8-bit files and 16-bit grayscale through Pillow."""
    pil.load()
    mode = pil.mode
    if mode.startswith("I;16") or mode == "I":
        gray = np.asarray(pil, dtype=np.float64)
        if gray.size and not (gray.min() >= 0 and gray.max() <= 65535):
            raise InputError(file, "samples outside the 16-bit range are not supported")
        gray = gray.astype(np.float32) / 65535.0
        return _from_planes(gray[..., None], alpha=None, grayscale=True, bit_depth=16, fmt=fmt)
    if mode in ("1", "L"):
        gray = np.asarray(pil.convert("L"), dtype=np.float32) / 255.0
        return _from_planes(gray[..., None], None, True, 8, fmt)
    if mode in ("LA", "La"):
        arr = np.asarray(pil.convert("LA"), dtype=np.float32) / 255.0
        return _from_planes(arr[..., :1], arr[..., 1], True, 8, fmt)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in pil.info
        pil = pil.convert("RGBA" if has_alpha else "RGB")
        mode = pil.mode
    if mode in ("RGBA", "RGBa"):
        arr = np.asarray(pil.convert("RGBA"), dtype=np.float32) / 255.0
        return _from_planes(arr[..., :3], arr[..., 3], False, 8, fmt)
    if mode in ("RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        arr = np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0
        return _from_planes(arr, None, False, 8, fmt)
    raise InputError(file, f"unsupported pixel format {mode!r}")


def _decode_png16(file: Path) -> Image:
    """16-bit PNG (gray, gray+alpha, RGB, RGBA, any filter or interlace) via pypng."""
    import png

    with open(file, "rb") as handle:  # pypng's own Reader(filename=) never closes its file
        width, height, rows, info = png.Reader(file=handle).asDirect()
        planes = int(info["planes"])
        data = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    data = data.reshape(height, width, planes).astype(np.float32) / 65535.0
    has_alpha = bool(info.get("alpha"))
    color = data[..., : planes - 1] if has_alpha else data
    alpha = data[..., -1] if has_alpha else None
    return _from_planes(color, alpha, bool(info.get("greyscale")), 16, "PNG")


def _decode_tiff16(file: Path) -> Image:
    """16-bit TIFF via tifffile (Pillow would drop the low byte of colour TIFFs)."""
    import tifffile

    with tifffile.TiffFile(file) as tif:
        page = tif.pages[0]
        photometric = int(page.photometric)
        if photometric not in _TIFF_16BIT_READ:
            name = _TIFF_PHOTOMETRIC.get(photometric, f"photometric {photometric}")
            raise InputError(file, f"16-bit {name} TIFF is not supported; convert it to RGB")
        data = page.asarray()
        axes = page.axes
    if "S" in axes and axes.index("S") != len(axes) - 1:
        data = np.moveaxis(data, axes.index("S"), -1)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3 or data.dtype != np.uint16:
        raise InputError(file, f"unsupported TIFF layout (axes {axes}, {data.dtype})")
    data = data.astype(np.float32) / 65535.0
    if photometric == 0:  # white is zero: the exact inverse
        data = 1.0 - data
    channels = data.shape[-1]
    if channels in (1, 2):
        alpha = data[..., 1] if channels == 2 else None
        return _from_planes(data[..., :1], alpha, True, 16, "TIFF")
    if channels in (3, 4):
        alpha = data[..., 3] if channels == 4 else None
        return _from_planes(data[..., :3], alpha, False, 16, "TIFF")
    raise InputError(file, f"unsupported TIFF with {channels} samples per pixel")


def _from_planes(
    color: np.ndarray, alpha: np.ndarray | None, grayscale: bool, bit_depth: int, fmt: str
) -> Image:
    """Build an Image from 1- or 3-channel colour plus optional alpha (float32 [0, 1])."""
    if color.shape[-1] == 1:
        color = np.repeat(color, 3, axis=-1)
    return Image(
        rgb=np.ascontiguousarray(color, dtype=np.float32),
        alpha=None if alpha is None else np.ascontiguousarray(alpha, dtype=np.float32),
        grayscale=grayscale,
        bit_depth=bit_depth,
        source_format=fmt,
    )


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation ``orientation`` (1..8) to an H x W [x C] array.

    Matches ``PIL.ImageOps.exif_transpose``: 2 mirror, 3 rotate 180, 4 flip,
    5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 anticlockwise.
    """
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](array))


def _apply_orientation(image: Image, orientation: int) -> Image:
    if orientation == 1:
        return image
    image.rgb = orient(image.rgb, orientation)
    if image.alpha is not None:
        image.alpha = orient(image.alpha, orientation)
    return image


def quantize(values: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float [0, 1] -> uint8 or uint16 with rounding (values outside are clipped)."""
    peak = 65535 if bit_depth == 16 else 255
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    scaled = np.clip(values, 0.0, 1.0)  # the only float copy: large outputs stay affordable
    scaled *= peak
    np.rint(scaled, out=scaled)
    return scaled.astype(dtype)


def write_image(
    path: str | os.PathLike[str],
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    grayscale: bool = False,
    bit_depth: int = 8,
    quality: int = 95,
) -> None:
    """Write float [0, 1] ``rgb`` (H x W x 3) atomically; the format comes from the extension.

    ``grayscale`` stores one channel (BT.601 luma of ``rgb``); ``alpha`` (H x W)
    adds an alpha channel (PNG, TIFF and WebP only); ``bit_depth=16`` is kept for
    PNG and TIFF, while JPEG, WebP and BMP always store 8 bits. ``quality``
    applies to JPEG and WebP. Values that are NaN or infinite (a diverged model) are
    refused with an :class:`~gtasr.errors.OutputError`: they would be written as black.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in _PIL_FORMATS:
        raise GtasrError(f"{file}: cannot write images of type {suffix or '(none)'!r}")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth}")
    if alpha is not None and suffix in (".jpg", ".jpeg", ".bmp"):
        raise GtasrError(f"{file}: {suffix} cannot store an alpha channel; use .png")
    if suffix in _EIGHT_BIT_ONLY:
        bit_depth = 8
    planes = _planes_for_writing(rgb, alpha, grayscale)
    if not (math.isfinite(float(planes.min())) and math.isfinite(float(planes.max()))):
        raise OutputError(file, "not written: the image holds NaN or infinite values")
    samples = quantize(planes, bit_depth)
    with atomic_path(file) as tmp:
        if bit_depth == 16 and suffix == ".png":
            _write_png16(tmp, samples)
        elif bit_depth == 16:
            _write_tiff16(tmp, samples)
        else:
            _write_pillow(tmp, samples, _PIL_FORMATS[suffix], quality)


def _planes_for_writing(rgb: np.ndarray, alpha: np.ndarray | None, grayscale: bool) -> np.ndarray:
    """H x W x C float array with C in (1, 2, 3, 4): gray/RGB plus optional alpha."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must be H x W x 3, got shape {rgb.shape}")
    color = (rgb @ _LUMA)[..., None] if grayscale else rgb
    if alpha is None:
        return color
    alpha = np.asarray(alpha, dtype=np.float32)
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
    return np.concatenate([color, alpha[..., None]], axis=-1)


def _write_pillow(tmp: Path, samples: np.ndarray, fmt: str, quality: int) -> None:
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[samples.shape[-1]]
    channels = samples[..., 0] if mode == "L" else samples
    pil = PIL.Image.fromarray(np.ascontiguousarray(channels), mode=mode)
    if mode == "LA" and fmt == "WEBP":
        pil = pil.convert("RGBA")
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = int(quality)
    pil.save(tmp, format=fmt, **options)


def _write_png16(tmp: Path, samples: np.ndarray) -> None:
    import png

    height, width, planes = samples.shape
    writer = png.Writer(
        width,
        height,
        greyscale=planes in (1, 2),
        alpha=planes in (2, 4),
        bitdepth=16,
        compression=6,
    )
    with open(tmp, "wb") as handle:
        writer.write_array(handle, samples.reshape(-1))


def _write_tiff16(tmp: Path, samples: np.ndarray) -> None:
    import tifffile

    planes = samples.shape[-1]
    data = samples[..., 0] if planes == 1 else samples
    photometric = "minisblack" if planes in (1, 2) else "rgb"
    extrasamples = ("unassalpha",) if planes in (2, 4) else None
    tifffile.imwrite(
        tmp,
        data,
        photometric=photometric,
        extrasamples=extrasamples,
        compression="zlib",
    )


def to_tensor(values: np.ndarray) -> torch.Tensor:
    """H x W x C float [0, 1] -> Tensor[1, C, H, W] float32 in [-1, 1] (contiguous).

    The one conversion from gtasr's image arrays to the networks' tensors; :func:`to_numpy`
    is its inverse.
    """
    import torch

    planes = np.ascontiguousarray(np.asarray(values, dtype=np.float32).transpose(2, 0, 1))
    return torch.from_numpy(planes)[None].mul(2.0).sub(1.0)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Tensor[1, C, H, W] or [C, H, W] in [-1, 1] -> H x W x C float32 in [0, 1], clipped.

    The arithmetic runs in place on the one copy this makes, so converting a large output
    canvas costs one canvas of memory.
    """
    t = tensor.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    values = np.array(t.float().cpu().permute(1, 2, 0).numpy(), dtype=np.float32, order="C")
    values += 1.0
    values *= 0.5
    return np.clip(values, 0.0, 1.0, out=values)
