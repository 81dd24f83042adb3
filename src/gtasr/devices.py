"""Choosing the torch device from a user's ``--device`` value."""

from __future__ import annotations

import torch

from gtasr.errors import GtasrError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple's MPS, then the CPU; other names are checked."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise GtasrError(f"unknown device {device!r} (auto, cpu, cuda or cuda:N)") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise GtasrError("--device cuda was requested but PyTorch sees no CUDA device")
    return resolved
