"""Names and bounds the command line, the web page and the Python API share.

Nothing here imports PyTorch, so ``gtasr --help`` and ``gtasr --version`` start at
once; the modules that do the work import these names rather than repeating them.
"""

from __future__ import annotations

PRECISION_NAMES = ("fp32", "fp16", "bf16")
"""Number formats a network runs or is stored in (``--precision``, ``train.precision``)."""
TORCH_DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
"""The ``torch`` attribute of each precision."""
UPSCALE_METHODS = ("model", "bicubic", "lanczos")

RUNTIMES = ("torch", "onnx", "openvino")
"""What runs the network: PyTorch, onnxruntime or OpenVINO's CPU plugin."""

BACKEND_NAMES = ("auto", *RUNTIMES)
"""``--backend``: ``auto`` is OpenVINO on the CPU where it is installed, else PyTorch."""
OUTPUT_EXTENSIONS = ("auto", "png", "jpg", "webp")
DEFAULT_TILE = 512
"""LR tile side of the API and the command line: bounds memory; smaller images are one tile."""
DEFAULT_TILE_OVERLAP = 32
MAX_STEPS = 64
"""Most sampling steps accepted: the models are trained for one to a few steps, and each
step costs a full network evaluation of the image."""
MAX_OUTSCALE = 16.0
"""Largest ``--outscale``: beyond the model's x4, the rest is Lanczos magnification."""
WEIGHT_KEYS = {"ema": "params_ema", "raw": "params"}
"""``--weights`` choices and the BasicSR keys they select in the authors' checkpoints."""
MAX_SEED = 2**63 - 1
"""Largest noise seed: every generator gtasr seeds (PyTorch's, NumPy's) takes 0..2**63-1
exactly, so two different seeds never give the same draws."""
