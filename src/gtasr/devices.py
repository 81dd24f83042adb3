"""Choosing the torch device from a user's ``--device`` value: the one resolver of gtasr.

PyTorch is imported when a device is resolved, not with this module: the command line
imports it to build its help, and a Ctrl-C while PyTorch loads must reach the command's
handler rather than interrupt an import at start-up.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from typing import TYPE_CHECKING

from gtasr.errors import GtasrError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"
DEVICE_TYPES = ("cpu", "cuda", "mps")
"""The kinds of device gtasr runs on (PyTorch knows others, such as meta, that hold no data)."""


def _mps_available() -> bool:
    import torch

    return bool(torch.backends.mps.is_available())


def resolve_device(
    device: str | torch.device = "auto", local_rank: int = 0, allow_mps: bool = True
) -> torch.device:
    """The device named by ``device``; checked, so a missing accelerator is a clear error.

    ``"auto"`` picks CUDA, then Apple's MPS (unless ``allow_mps`` is false: a process group
    cannot run on it), then the CPU. A CUDA device without an index is this process's GPU
    under torchrun (``local_rank`` modulo the GPU count), GPU 0 otherwise.
    """
    import torch

    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if allow_mps and _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise GtasrError(f"unknown device {str(device)!r} ({DEVICE_HELP})") from error
    if resolved.type not in DEVICE_TYPES:
        raise GtasrError(f"unknown device {str(device)!r} ({DEVICE_HELP})")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise GtasrError(f"device {str(device)!r} requested, but PyTorch sees no CUDA device")
        count = torch.cuda.device_count()
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank % count)
        elif resolved.index >= count:
            raise GtasrError(f"device {str(device)!r} requested, but PyTorch sees {count} GPU(s)")
    elif resolved.type == "mps" and not (allow_mps and _mps_available()):
        raise GtasrError(f"device {str(device)!r} requested, but MPS is not usable here")
    return resolved


def release_memory() -> None:
    """Give freed memory back to the system: the C allocator keeps freed blocks
    (gigabytes after a large image or a dropped network) unless asked to return them."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
