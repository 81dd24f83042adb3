"""Choosing the torch device from a user's ``--device`` value: the one resolver of gtasr."""

from __future__ import annotations

import torch

from gtasr.errors import GtasrError

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"


def _mps_available() -> bool:
    return bool(torch.backends.mps.is_available())


def resolve_device(
    device: str | torch.device = "auto", local_rank: int = 0, allow_mps: bool = True
) -> torch.device:
    """The device named by ``device``; checked, so a missing accelerator is a clear error.

    ``"auto"`` picks CUDA, then Apple's MPS (unless ``allow_mps`` is false: a process group
    cannot run on it), then the CPU. A CUDA device without an index is this process's GPU
    under torchrun (``local_rank`` modulo the GPU count), GPU 0 otherwise.
    """
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
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise GtasrError(f"device {str(device)!r} requested, but PyTorch sees no CUDA device")
        if resolved.index is None:
            resolved = torch.device("cuda", local_rank % torch.cuda.device_count())
    elif resolved.type == "mps" and not (allow_mps and _mps_available()):
        raise GtasrError(f"device {str(device)!r} requested, but MPS is not usable here")
    return resolved
