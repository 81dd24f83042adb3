"""The Python API: ``Upscaler.from_pretrained(path).upscale(image, seed=0)``.

One network evaluation per tile (METHOD §6)::

    x_T = y0 + eps,    SR = clamp(f(x_T, 1, y), -1, 1)

or, with ``steps=k > 1``, the same network sampled along k equally spaced
noise levels (1, (k-1)/k, ..., 1/k: Stage II's grid), re-noising the
prediction onto the bridge with fresh noise before each further step
(:func:`gtasr.method.sampling.sample`). The noise of every step is cut from a
seeded :class:`~gtasr.infer.noise.NoiseField` over the whole canvas, so a seed
gives the same picture with or without tiling, on any device.

An Upscaler holds only the model: every call builds its own noise and
buffers, so one instance can serve several threads.

Models from the authors' checkpoints (family ``release``) keep the authors'
test-time conventions (:class:`Conventions`): the LR image is padded to a
multiple of 64 and y0 is not clamped, so with the same noise the pixels are
the release's.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import PIL.Image
import torch
from torch import Tensor

from gtasr.choices import BACKEND_NAMES, DEFAULT_TILE, DEFAULT_TILE_OVERLAP, MAX_STEPS
from gtasr.devices import resolve_device
from gtasr.errors import GtasrError, RuntimeUnavailable
from gtasr.hub import ModelSpec, resolve_model
from gtasr.hub import bundled_model_path as bundled_model_path  # callers import it from here
from gtasr.imageio import quantize, to_numpy, to_tensor
from gtasr.infer.backends import OnnxDenoiser, OpenVinoDenoiser, TorchDenoiser, choose_backend
from gtasr.infer.noise import FixedNoise, NoiseField
from gtasr.infer.tiling import TileProgress, seamless_tiling, tiled_upscale
from gtasr.method.sampling import multistep_etas, sample
from gtasr.nets.release_layout import TRAINING_LR_SIZE
from gtasr.release import FAMILY as RELEASE_FAMILY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Conventions:
    """How a model family's test-time pipeline meets the network."""

    pad_multiple: int = 1
    """LR sizes are padded (and tiles placed) at multiples of this and of the network stride."""
    clamp_y0: bool = True
    """Whether y0, the bicubic upsampling that the noise is added to, is clamped to [-1, 1]."""


CONVENTIONS: Final = {
    "gtasr": Conventions(),
    RELEASE_FAMILY: Conventions(pad_multiple=TRAINING_LR_SIZE, clamp_y0=False),
}


class Upscaler:
    """x4 super-resolution with a trained GTASR model."""

    def __init__(
        self, denoiser: TorchDenoiser | OnnxDenoiser, source: str = "", family: str = "gtasr"
    ) -> None:
        if family not in CONVENTIONS:
            raise GtasrError(f"{source}: unknown model family {family!r}")
        self.denoiser = denoiser
        self.source = source
        self.family = family
        self.conventions = CONVENTIONS[family]
        self.scale = denoiser.scale
        self.stride = math.lcm(denoiser.stride, self.conventions.pad_multiple)

    @classmethod
    def from_pretrained(
        cls,
        path: ModelSpec | None = None,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        backend: str = "auto",
        weights: str | None = None,
    ) -> Upscaler:
        """Load a model file (``.safetensors``, the authors' ``.pth``, or a gtasr ``.onnx``).

        ``path`` is a model spec (:func:`gtasr.hub.resolve_model`): a file, a name from
        ``gtasr models`` or ``hf://OWNER/REPO/FILE[@REVISION]``; without it, the bundled
        default model. ``backend``: ``"torch"``, ``"onnx"`` (onnxruntime),
        ``"openvino"`` (its CPU plugin) or ``"auto"``
        (:func:`~gtasr.infer.backends.choose_backend`: OpenVINO on the CPU where it is
        installed, PyTorch otherwise); the ONNX runtimes take other model files
        exported on the fly. ``weights`` ("ema" or "raw") chooses among the weights of
        an authors' checkpoint.
        """
        if backend not in BACKEND_NAMES:
            raise GtasrError(f"unknown backend {backend!r} ({', '.join(BACKEND_NAMES)})")
        file = resolve_model(path)
        resolved = resolve_device(device)
        chosen = choose_backend(backend, resolved, file)
        is_onnx = file.suffix.lower() == ".onnx"
        if chosen != "torch":
            if resolved.type != "cpu" and chosen == "openvino":
                raise GtasrError("--backend openvino runs on the CPU; use --device cpu")
            try:
                runtime = _exported_denoiser(file, chosen, resolved, precision, weights)
            except RuntimeUnavailable as error:
                if backend != "auto" or is_onnx:
                    raise
                log.warning("%s; running the model with torch instead", error)
            else:
                log.info("backend: %s (%s, %s)", chosen, resolved.type, runtime.precision)
                return cls(runtime, source=str(file), family=runtime.family)
        if is_onnx:
            raise GtasrError(f"{file}: ONNX models run with --backend onnx or openvino")
        from gtasr.modelfile import load_model

        model, info = load_model(file, device=resolved, weights=weights)
        denoiser = TorchDenoiser(model, resolved, precision)
        log.info("backend: torch (%s, %s)", resolved.type, precision)
        return cls(denoiser, source=str(file), family=info.family)

    def upscale_tensor(
        self,
        y: Tensor,
        *,
        seed: int = 0,
        tile: int | None = DEFAULT_TILE,
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
        steps: int = 1,
        noise: Tensor | None = None,
        on_tile: TileProgress | None = None,
    ) -> Tensor:
        """LR Tensor[1, 3, h, w] in [-1, 1] -> SR Tensor[1, 3, 4h, 4w] in [-1, 1] (CPU, float32).

        ``tile`` and ``tile_overlap`` below the seamless minimum are raised to it
        (:func:`~gtasr.infer.tiling.seamless_tiling`, with a warning).

        ``noise`` (Tensor[1, 3, 4H, 4W] over the LR image padded to
        :attr:`stride`) replaces the seeded noise field, for one-step sampling.
        ``on_tile(done, total)`` is called after each tile (progress reporting).
        """
        if y.dim() != 4 or y.shape[0] != 1 or y.shape[1] != 3:
            raise ValueError(f"expected a Tensor[1, 3, h, w], got {tuple(y.shape)}")
        if y.shape[2] == 0 or y.shape[3] == 0:
            raise GtasrError(f"the image is empty ({y.shape[3]}x{y.shape[2]} pixels)")
        if not bool(torch.isfinite(y).all()):
            raise GtasrError("the image holds NaN or infinite values")
        if not 1 <= steps <= MAX_STEPS:
            raise GtasrError(f"steps must be within 1..{MAX_STEPS}, not {steps}")
        tile, tile_overlap = seamless_tiling(tile, tile_overlap)
        etas = multistep_etas(steps)
        if noise is not None and steps != 1:
            raise ValueError("an explicit noise tensor serves one-step sampling only")
        field = NoiseField(seed, channels=3) if noise is None else FixedNoise(noise)
        denoiser = self.denoiser

        def sample_tile(y_tile: Tensor, y0_tile: Tensor, top: int, left: int) -> Tensor:
            height, width = y0_tile.shape[-2:]

            def draw(step: int) -> Tensor:
                return field.crop(top, left, height, width, step).to(y0_tile.device)

            return sample(denoiser, y_tile, y0_tile, draw, etas)

        device = getattr(denoiser, "device", torch.device("cpu"))
        return tiled_upscale(
            sample_tile,
            y.float().to(device),
            scale=self.scale,
            stride=self.stride,
            tile=tile,
            overlap=tile_overlap,
            on_tile=on_tile,
            clamp_y0=self.conventions.clamp_y0,
        )

    def upscale_rgb(self, rgb: np.ndarray, **options: Any) -> np.ndarray:
        """H x W x 3 float [0, 1] -> 4H x 4W x 3 float32 [0, 1] (options as :meth:`upscale`)."""
        return to_numpy(self.upscale_tensor(to_tensor(rgb), **options))

    def upscale(
        self,
        image: PIL.Image.Image | np.ndarray,
        seed: int = 0,
        tile: int | None = DEFAULT_TILE,
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
        steps: int = 1,
        noise: Tensor | None = None,
    ) -> PIL.Image.Image | np.ndarray:
        """Upscale a PIL image or an H x W [x C] array; returns the same kind.

        The image is processed in LR tiles of ``tile`` pixels (``None``: the whole image), which
        bounds memory and does not change the picture beyond the blend of the overlaps.

        Arrays may be uint8, uint16 (full 16-bit range) or float ([0, 1]),
        grayscale (H x W or H x W x 1), RGB or RGBA; the result has the same
        dtype and channels. Alpha is upscaled separately (bicubic). PIL images
        come back in their mode (palette images as RGB/RGBA). ``noise`` as in
        :meth:`upscale_tensor`.
        """
        options = {
            "seed": seed,
            "tile": tile,
            "tile_overlap": tile_overlap,
            "steps": steps,
            "noise": noise,
        }
        if isinstance(image, PIL.Image.Image):
            return _upscale_pil(self, image, options)
        if isinstance(image, np.ndarray):
            return _upscale_array(self, image, options)
        raise TypeError(f"expected a PIL image or a numpy array, not {type(image).__name__}")


def upscale_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """H x W alpha in [0, 1] -> bicubic x``scale``, clipped to [0, 1]."""
    from gtasr.method.schedule import upsample_lr

    return to_numpy(upsample_lr(to_tensor(alpha[..., None]), scale))[..., 0]


def _array_to_float(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        if not np.isfinite(values).all():  # before clipping turns infinities into 0 or 1
            raise GtasrError("the image holds NaN or infinite values")
        return np.clip(values, 0.0, 1.0)
    raise TypeError(f"unsupported array dtype {array.dtype} (uint8, uint16 or float)")


def _float_to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return quantize(values, 8)
    if dtype == np.uint16:
        return quantize(values, 16)
    return values.astype(dtype)


def _upscale_array(up: Upscaler, array: np.ndarray, options: dict[str, Any]) -> np.ndarray:
    squeeze = array.ndim == 2
    data = array[..., None] if squeeze else array
    if data.ndim != 3 or data.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected H x W, H x W x 1, x 3 or x 4, got {array.shape}")
    values = _array_to_float(data)
    channels = data.shape[-1]
    color = np.repeat(values[..., :1], 3, axis=-1) if channels == 1 else values[..., :3]
    sr = up.upscale_rgb(color, **options)
    if channels == 1:
        sr = sr.mean(axis=-1, keepdims=True)
    elif channels == 4:
        alpha = upscale_alpha(values[..., 3], up.scale)
        sr = np.concatenate([sr, alpha[..., None]], axis=-1)
    out = _float_to_dtype(sr, array.dtype)
    return out[..., 0] if squeeze else out


def _upscale_pil(up: Upscaler, image: PIL.Image.Image, options: dict[str, Any]) -> PIL.Image.Image:
    mode = image.mode
    if mode.startswith("I;16"):
        array = np.asarray(image).astype(np.uint16)
        return PIL.Image.fromarray(_upscale_array(up, array, options))
    target = {"L": "L", "LA": "RGBA", "RGB": "RGB", "RGBA": "RGBA"}.get(mode)
    if target is None:
        has_alpha = "A" in mode or "transparency" in image.info
        target = "RGBA" if has_alpha else "RGB"
    array = np.asarray(image.convert(target))
    result = PIL.Image.fromarray(_upscale_array(up, array, options))
    return result.convert("LA") if mode == "LA" else result


def _exported_denoiser(
    file: Path, backend: str, device: torch.device, precision: str, weights: str | None
) -> OnnxDenoiser | OpenVinoDenoiser:
    """The ONNX runtime ``backend`` on ``file``, exported to ONNX first unless it is one."""
    if backend == "onnx" and precision != "fp32":
        raise GtasrError("--backend onnx runs in fp32 only")

    def open_runtime(onnx_file: Path, kept: bool = True) -> OnnxDenoiser | OpenVinoDenoiser:
        if backend == "onnx":
            return OnnxDenoiser(onnx_file, device)
        return OpenVinoDenoiser(onnx_file, precision, reshape=kept)

    if file.suffix.lower() == ".onnx":
        return open_runtime(file)
    from gtasr.infer.onnx_export import cached_export, export_onnx

    cached = cached_export(file, weights)
    if cached is not None:
        return open_runtime(cached)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gtasr-onnx-") as folder:
        exported = Path(folder) / "model.onnx"
        export_onnx(file, exported, weights=weights)
        return open_runtime(exported, kept=False)
