"""Runtimes that evaluate the consistency function f(x, sigma, y): PyTorch, onnxruntime
or OpenVINO.

All expose the same call, ``denoiser(x, sigma, y) -> Tensor`` (unclamped, on
the input's device for PyTorch, on the CPU for the others), so the samplers
and the tiler do not care which one runs: the noise field, tiling and
blending stay gtasr's. None keeps per-call state: one instance can serve
several threads.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import Tensor, nn

from gtasr.choices import PRECISION_NAMES, TORCH_DTYPE_NAMES
from gtasr.devices import release_memory
from gtasr.errors import GtasrError, RuntimeUnavailable, first_line
from gtasr.fileio import cache_folder

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
            raise RuntimeUnavailable(
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
        self.stride, self.scale, self.network, self.family = _checked_onnx_metadata(meta, path)
        _check_onnx_signature(
            [node.name for node in self.session.get_inputs()],
            [node.name for node in self.session.get_outputs()],
            path,
        )
        self.device = torch.device("cpu")
        self.precision = "fp32"

    def __call__(self, x: Tensor, sigma: float, y: Tensor) -> Tensor:
        (out,) = self.session.run(["f"], _feeds(x, sigma, y))
        return torch.from_numpy(out)


def _feeds(x: Tensor, sigma: float, y: Tensor) -> dict[str, np.ndarray]:
    """The inputs of an exported graph as float32 arrays (sigma one per batch item)."""
    return {
        "x": x.detach().float().cpu().numpy(),
        "sigma": np.full((x.shape[0],), sigma, dtype=np.float32),
        "y": y.detach().float().cpu().numpy(),
    }


MAX_ONNX_STRIDE = 64


def _checked_onnx_metadata(meta: dict[str, str], path: str | Path) -> tuple[int, int, dict, str]:
    """(stride, scale, network, family) of an exported model, each checked: the file is
    untrusted."""
    from gtasr.modelfile import SCALE, metadata_json

    if "gtasr.stride" not in meta:
        raise GtasrError(f"{path}: not an ONNX model exported by gtasr export-onnx")
    stride = _metadata_int(meta, "gtasr.stride", path)
    scale = _metadata_int(meta, "gtasr.scale", path)
    if not 1 <= stride <= MAX_ONNX_STRIDE:
        raise GtasrError(
            f"{path}: 'gtasr.stride' must be within 1..{MAX_ONNX_STRIDE}, not {stride}"
        )
    if scale != SCALE:
        raise GtasrError(f"{path}: 'gtasr.scale' {scale}: gtasr models are x{SCALE}")
    try:
        network = metadata_json({"gtasr.network": "{}", **meta}, "gtasr.network")
    except ValueError as error:
        raise GtasrError(f"{path}: damaged 'gtasr.network' metadata ({error})") from None
    if not isinstance(network, dict):
        raise GtasrError(f"{path}: 'gtasr.network' is not a mapping")
    return stride, scale, network, meta.get("gtasr.family", "gtasr")


def _metadata_int(meta: dict[str, str], key: str, path: str | Path) -> int:
    text = meta.get(key, "")
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise GtasrError(f"{path}: {key!r} must be a whole number, not {text[:40]!r}")
    return int(text)


def _check_onnx_signature(inputs: list[str], outputs: list[str], path: str | Path) -> None:
    """The graph must take x, sigma, y and give f, as gtasr export-onnx writes it."""
    from gtasr.infer.onnx_export import INPUT_NAMES, OUTPUT_NAME

    inputs, outputs = tuple(inputs), tuple(outputs)
    if sorted(inputs) != sorted(INPUT_NAMES) or outputs != (OUTPUT_NAME,):
        raise GtasrError(
            f"{path}: takes inputs {', '.join(inputs) or 'none'} and gives "
            f"{', '.join(outputs) or 'nothing'}; a gtasr export takes x, sigma, y and gives f"
        )


OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
"""gtasr precision -> OpenVINO's inference precision hint."""

OPENVINO_CAPABILITIES = {"bf16": "BF16", "fp16": "FP16"}
"""gtasr precision -> the CPU capability OpenVINO needs to run it natively."""


STATIC_GRAPHS = 2
"""Input shapes that keep a graph compiled for them alone (least recently used dropped)."""


class OpenVinoDenoiser:
    """An exported model (see :mod:`gtasr.infer.onnx_export`) run by OpenVINO's CPU plugin.

    A graph compiled with dynamic shapes runs any input; an input shape met a second
    time (the tiles of an image share one) gets a graph compiled for that shape alone,
    which runs faster and in less memory, and the dynamic graph, which holds memory for
    every shape it ran, is let go until a new shape comes. Up to :data:`STATIC_GRAPHS`
    are kept; OpenVINO's model cache keeps the compiled graphs for later starts. With
    ``reshape=False`` (a file that is not kept) the dynamic graph serves every shape.
    ``precision`` sets OpenVINO's inference precision hint, explicitly also for fp32,
    since OpenVINO otherwise computes in bf16 on CPUs that have it; a reduced precision
    the CPU lacks natively falls back to fp32 with a warning. Calls on one graph take
    turns (each runs on all of ``threads``), so threads can share an instance.
    """

    def __init__(
        self, path: str | Path, precision: str = "fp32", threads: int = 0, reshape: bool = True
    ) -> None:
        self.path, self.reshape = Path(path), reshape
        self._core = _openvino_core()
        model = self._read()
        self.stride, self.scale, self.network, self.family = _checked_onnx_metadata(
            _openvino_metadata(model), path
        )
        _check_onnx_signature(
            [port.get_any_name() for port in model.inputs],
            [port.get_any_name() for port in model.outputs],
            path,
        )
        self.precision = _openvino_precision(self._core, precision)
        self._config = {
            "INFERENCE_PRECISION_HINT": OPENVINO_HINTS[self.precision],
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
            # pinned threads go to the first cores, so two processes (--ray workers, two
            # commands) would share one core: 2 workers ran 1.09x one worker, unpinned 1.83x
            "ENABLE_CPU_PINNING": False,
        }
        self._dynamic: _Graph | None = self._compile(model)
        self._static: OrderedDict[tuple, _Graph] = OrderedDict()
        self._seen: set[tuple] = set()
        self._lock = threading.Lock()
        self.device = torch.device("cpu")

    def __call__(self, x: Tensor, sigma: float, y: Tensor) -> Tensor:
        graph = self._graph((tuple(x.shape), tuple(y.shape)))
        with graph.lock:
            if graph.request is None:
                graph.request = graph.compiled.create_infer_request()
            return _infer(graph.request, _feeds(x, sigma, y), graph.output)

    def _graph(self, shapes: tuple) -> _Graph:
        """The graph for these input shapes: a static one from the second call on."""
        with self._lock:
            if shapes in self._static:
                self._static.move_to_end(shapes)
                return self._static[shapes]
            if not self.reshape or shapes not in self._seen:
                self._seen.add(shapes)
                if self._dynamic is None:
                    self._dynamic = self._compile(self._read())
                return self._dynamic
            if self._dynamic is not None:  # its memory for the shapes it ran goes with it
                self._dynamic = None
                release_memory()
            (x, y) = shapes
            model = self._read()
            model.reshape({"x": list(x), "sigma": [x[0]], "y": list(y)})
            self._static[shapes] = self._compile(model)
            if len(self._static) > STATIC_GRAPHS:
                self._static.popitem(last=False)
            return self._static[shapes]

    def _read(self) -> object:
        try:
            return self._core.read_model(str(self.path))
        except RuntimeError as error:
            message = f"{self.path}: not a readable ONNX model ({first_line(error)})"
            raise GtasrError(message) from None

    def _compile(self, model: object) -> _Graph:
        try:
            compiled = _compile(self._core, model, self._config)
        except RuntimeError as error:
            message = f"{self.path}: OpenVINO cannot compile it ({first_line(error)})"
            raise RuntimeUnavailable(message) from None
        return _Graph(compiled, compiled.output(0))


@dataclass
class _Graph:
    """A compiled graph, its output port, its inference request (made on first use) and
    the lock of its turns."""

    compiled: object
    output: object
    request: object | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _infer(request: object, feeds: dict[str, np.ndarray], output: object) -> Tensor:
    return torch.from_numpy(np.array(request.infer(feeds)[output]))


def openvino_available(exports: bool = True) -> bool:
    """Whether the OpenVINO runtime is installed, and with ``exports`` the onnx package
    that exporting a model file needs (found without importing either)."""
    needed = ("openvino", "onnx") if exports else ("openvino",)
    return all(importlib.util.find_spec(name) is not None for name in needed)


def choose_backend(backend: str, device: torch.device, path: Path) -> str:
    """The runtime ``backend`` stands for on ``device``: ``"auto"`` is OpenVINO on the CPU
    where it is installed (with onnx, for a model file it must export), else onnxruntime
    for an ``.onnx`` file and PyTorch for the rest."""
    if backend != "auto":
        return backend
    is_onnx = path.suffix.lower() == ".onnx"
    if device.type == "cpu" and openvino_available(exports=not is_onnx):
        return "openvino"
    return "onnx" if is_onnx else "torch"


def _openvino_core() -> object:
    """The process's one OpenVINO Core, kept until exit.

    Each Core loads its own CPU plugin, which installs an alternate signal stack on the
    calling thread and, when the plugin goes, puts back the stack it found, memory that
    may by then be freed when plugins go in another order than they came. Python runs
    its signal handlers on the alternate stack, so the next Ctrl-C, SIGTERM or exiting
    child process then killed the process with SIGSEGV. One Core that stays means one
    plugin that never goes.
    """
    return _core_of(_import_openvino())


@functools.cache
def _core_of(openvino: ModuleType) -> object:
    return openvino.Core()


def _import_openvino() -> ModuleType:
    """OpenVINO, imported without its usage telemetry: importing ``openvino`` sets up
    ``openvino_telemetry`` (which writes an id and counters under ``~/intel``) unless that
    package cannot be imported, when OpenVINO uses a stand-in that does nothing."""
    hidden = "openvino" not in sys.modules and "openvino_telemetry" not in sys.modules
    if hidden:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    try:
        import openvino
    except ImportError as error:
        raise RuntimeUnavailable(
            "--backend openvino needs OpenVINO: pip install 'gtasr[openvino]'"
        ) from error
    finally:
        if hidden:
            del sys.modules["openvino_telemetry"]
    return openvino


def _openvino_precision(core: object, precision: str) -> str:
    """``precision`` if the CPU runs it natively, else fp32 (with a warning)."""
    if precision not in OPENVINO_HINTS:
        raise GtasrError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    needed = OPENVINO_CAPABILITIES.get(precision)
    if needed and needed not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        log.warning("this CPU has no native %s; OpenVINO runs in fp32", precision)
        return "fp32"
    return precision


def _compile(core: object, model: object, config: dict) -> object:
    """``model`` compiled for the CPU, through OpenVINO's compiled-model cache in gtasr's
    cache folder when it can be written (a later start loads the compiled graph)."""
    folder = cache_folder() / "openvino"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        config = {**config, "CACHE_DIR": str(folder)}
    except OSError as error:
        log.debug("no OpenVINO model cache in %s (%s)", folder, error)
    return core.compile_model(model, "CPU", config)


def _openvino_metadata(model: object) -> dict[str, str]:
    """The ``gtasr.*`` metadata properties of an ONNX model as OpenVINO read it."""
    keys = ("gtasr.stride", "gtasr.scale", "gtasr.network", "gtasr.family")
    return {
        key: str(model.get_rt_info(["framework", key]).astype(str))
        for key in keys
        if model.has_rt_info(["framework", key])
    }
