"""Runtimes that evaluate the consistency function f(x, sigma, y): PyTorch or onnxruntime.

Both expose the same call, ``denoiser(x, sigma, y) -> Tensor`` (unclamped, on
the input's device for PyTorch, on the CPU for onnxruntime), so the samplers
and the tiler do not care which one runs. Neither keeps per-call state: one
instance can serve several threads.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from gtasr.choices import PRECISION_NAMES, TORCH_DTYPE_NAMES
from gtasr.errors import GtasrError

log = logging.getLogger(__name__)

PRECISIONS = {name: getattr(torch, TORCH_DTYPE_NAMES[name]) for name in PRECISION_NAMES}


CHANNELS_LAST_DEVICES = ("cpu", "cuda")
"""Devices whose convolutions run fastest on channels-last (NHWC) tensors."""


def prepare_model(model: nn.Module, device: torch.device, precision: str) -> nn.Module:
    """``model`` (in place) as the fast inference path runs it; returns it.

    Eval mode on ``device``; for ``"bf16"``/``"fp16"`` every floating-point weight is cast
    once, here, so no call pays for casting weights (as autocast would on every call);
    ``"fp32"`` keeps the weights' stored dtype. On :data:`CHANNELS_LAST_DEVICES` the
    convolution weights are laid out channels-last.
    """
    if precision not in PRECISIONS:
        raise GtasrError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    model = model.to(device).eval()
    if precision != "fp32":
        model = model.to(PRECISIONS[precision])
    if device.type in CHANNELS_LAST_DEVICES:
        model = model.to(memory_format=torch.channels_last)
    return model


class TorchDenoiser:
    """A :class:`~gtasr.method.precond.ConsistencyModel` prepared for inference on one device.

    The model is prepared in place by :func:`prepare_model`: ``precision``
    ``"fp32"`` runs the weights as stored, ``"bf16"``/``"fp16"`` run the
    backbone on weights cast once to that dtype, while the preconditioning
    arithmetic and the returned tensor stay float32. Inputs are passed
    channels-last where the weights are.
    """

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32") -> None:
        if precision == "fp16" and device.type == "cpu":
            log.warning("fp16 on the CPU is slow; bf16 is the reduced precision CPUs support well")
        self.model = prepare_model(model, device, precision)
        self.device = device
        self.precision = precision
        self.stride = int(model.backbone.stride)
        self.scale = int(model.backbone.scale)
        self.memory_format = (
            torch.channels_last if device.type in CHANNELS_LAST_DEVICES else torch.contiguous_format
        )

    def __call__(self, x: Tensor, sigma: float, y: Tensor) -> Tensor:
        layout = self.memory_format
        with torch.inference_mode():
            out = self.model(
                x.to(self.device, torch.float32, memory_format=layout),
                float(sigma),
                y.to(self.device, torch.float32, memory_format=layout),
            )
        return out.float()


class OnnxDenoiser:
    """An exported model (see :mod:`gtasr.infer.onnx_export`) run by onnxruntime."""

    def __init__(self, path: str | Path, device: torch.device) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise GtasrError(
                "--backend onnx needs onnxruntime: pip install 'gtasr[onnx]'"
            ) from error
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda":
            available = onnxruntime.get_available_providers()
            if "CUDAExecutionProvider" not in available:
                raise GtasrError("onnxruntime has no CUDA provider; use --device cpu")
            providers.insert(0, "CUDAExecutionProvider")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=providers
            )
        except Exception as error:  # onnxruntime raises its own, unexported, error types
            raise GtasrError(f"{path}: cannot load ONNX model ({error})") from error
        meta = self.session.get_modelmeta().custom_metadata_map
        if "gtasr.stride" not in meta:
            raise GtasrError(f"{path}: not an ONNX model exported by gtasr export-onnx")
        self.stride, self.scale, self.network = _checked_onnx_metadata(meta, path)
        _check_onnx_signature(self.session, path)
        self.family = meta.get("gtasr.family", "gtasr")
        self.device = torch.device("cpu")
        self.precision = "fp32"

    def __call__(self, x: Tensor, sigma: float, y: Tensor) -> Tensor:
        feeds = {
            "x": x.detach().float().cpu().numpy(),
            "sigma": np.full((x.shape[0],), sigma, dtype=np.float32),
            "y": y.detach().float().cpu().numpy(),
        }
        (out,) = self.session.run(["f"], feeds)
        return torch.from_numpy(out)


MAX_ONNX_STRIDE = 64


def _checked_onnx_metadata(meta: dict[str, str], path: str | Path) -> tuple[int, int, dict]:
    """(stride, scale, network) of an exported model, each checked: the file is untrusted."""
    from gtasr.modelfile import MAX_METADATA_CHARS, SCALE

    stride = _metadata_int(meta, "gtasr.stride", path)
    scale = _metadata_int(meta, "gtasr.scale", path)
    if not 1 <= stride <= MAX_ONNX_STRIDE:
        raise GtasrError(
            f"{path}: 'gtasr.stride' must be within 1..{MAX_ONNX_STRIDE}, not {stride}"
        )
    if scale != SCALE:
        raise GtasrError(f"{path}: 'gtasr.scale' {scale}: gtasr models are x{SCALE}")
    text = meta.get("gtasr.network", "{}")
    try:
        if len(text) > MAX_METADATA_CHARS:
            raise ValueError("too long")
        network = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise GtasrError(f"{path}: damaged 'gtasr.network' metadata ({error})") from None
    if not isinstance(network, dict):
        raise GtasrError(f"{path}: 'gtasr.network' is not a mapping")
    return stride, scale, network


def _metadata_int(meta: dict[str, str], key: str, path: str | Path) -> int:
    text = meta.get(key, "")
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise GtasrError(f"{path}: {key!r} must be a whole number, not {text[:40]!r}")
    return int(text)


def _check_onnx_signature(session: object, path: str | Path) -> None:
    """The graph must take x, sigma, y and give f, as gtasr export-onnx writes it."""
    from gtasr.infer.onnx_export import INPUT_NAMES, OUTPUT_NAME

    inputs = tuple(node.name for node in session.get_inputs())
    outputs = tuple(node.name for node in session.get_outputs())
    if sorted(inputs) != sorted(INPUT_NAMES) or outputs != (OUTPUT_NAME,):
        raise GtasrError(
            f"{path}: takes inputs {', '.join(inputs) or 'none'} and gives "
            f"{', '.join(outputs) or 'nothing'}; a gtasr export takes x, sigma, y and gives f"
        )
