"""Export the consistency function f(x, sigma, y) of a model file to ONNX.

The graph takes the noisy HR state ``x`` (Tensor[B, 3, 4h, 4w]), the noise
level ``sigma`` (Tensor[B]) and the LR image ``y`` (Tensor[B, 3, h, w]), with
dynamic batch, height and width, and returns ``f`` unclamped. The noise and
y0 stay outside the graph, so onnxruntime and PyTorch can be compared on the
same ``x``, and the same graph serves one-step and multi-step sampling. The
file's metadata records the network's stride and scale (inputs must be padded
to the stride, as the tiler does), the architecture and the model family
(whose test-time conventions the upscaler keeps).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from gtasr.errors import OutputError, RuntimeUnavailable, first_line
from gtasr.fileio import atomic_path, cache_folder, file_sha256
from gtasr.version import __version__

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAMES = ("x", "sigma", "y")
OUTPUT_NAME = "f"


class _ConsistencyGraph(nn.Module):
    """f(x, sigma, y) with sigma as a tensor input (what the exporter traces)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
        return self.model(x, sigma, y)


def export_onnx(
    model_path: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str],
    *,
    example_lr: int = 32,
    opset: int = OPSET,
    weights: str | None = None,
) -> Path:
    """Write the model in ``model_path`` as an ONNX graph to ``onnx_path`` (atomically).

    ``weights`` chooses among the weights of an authors' checkpoint (as ``load_model``).
    """
    try:
        import onnx
    except ImportError as error:
        raise RuntimeUnavailable(
            "exporting to ONNX needs the onnx package: pip install 'gtasr[onnx]'"
        ) from error
    from gtasr.modelfile import load_model

    model, info = load_model(model_path, device="cpu", weights=weights)
    stride = int(model.backbone.stride)
    scale = int(model.backbone.scale)
    side = max(stride, -(-example_lr // stride) * stride)
    generator = torch.Generator().manual_seed(0)
    y = torch.rand((1, 3, side, side), generator=generator) * 2 - 1
    x = torch.randn((1, 3, side * scale, side * scale), generator=generator)
    sigma = torch.ones(1)
    spatial = {0: "batch", 2: "height", 3: "width"}
    hr_spatial = {0: "batch", 2: "hr_height", 3: "hr_width"}
    out = Path(onnx_path)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                _ConsistencyGraph(model).eval(),
                (x, sigma, y),
                str(tmp),
                dynamo=False,
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes={
                    "x": hr_spatial,
                    "sigma": {0: "batch"},
                    "y": spatial,
                    "f": hr_spatial,
                },
                opset_version=opset,
            )
        except (RuntimeError, TypeError, ValueError) as error:  # the tracer's and exporter's
            message = f"{model_path}: cannot export it to ONNX ({first_line(error)})"
            raise RuntimeUnavailable(message) from None
        graph = onnx.load(str(tmp))
        metadata = {
            "gtasr.stride": str(stride),
            "gtasr.scale": str(scale),
            "gtasr.network": json.dumps(info.network, sort_keys=True),
            "gtasr.family": info.family,
            "gtasr.source": Path(model_path).name,
        }
        for key, value in metadata.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(tmp))
    return out


def cached_export(model_path: str | os.PathLike[str], weights: str | None = None) -> Path | None:
    """The ONNX export of ``model_path``, from gtasr's cache folder
    (:func:`~gtasr.fileio.cache_folder`) or exported into it once.

    Exporting traces the network (seconds for the bundled model), which the ONNX runtimes
    would otherwise pay at every start. An export is named after the model file's SHA-256,
    the weights choice, gtasr's version and the opset, so a changed file or a new gtasr
    exports again. None when the cache cannot be written (the caller exports elsewhere).
    """
    digest = file_sha256(model_path)[:32]
    name = f"{digest}-{weights or 'default'}-{__version__}-opset{OPSET}.onnx"
    target = cache_folder() / "onnx" / name
    if target.is_file():
        log.debug("ONNX export of %s from the cache: %s", model_path, target)
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return export_onnx(model_path, target, weights=weights)
    except (OSError, OutputError) as error:
        log.debug("cannot cache the ONNX export in %s (%s)", target.parent, error)
        return None
