"""Device choice from --device values."""

from __future__ import annotations

import pytest
import torch

from gtasr.devices import resolve_device
from gtasr.errors import GtasrError


def test_auto_prefers_cuda_when_present():
    expected = "cuda" if torch.cuda.is_available() else None
    chosen = resolve_device("auto").type
    assert chosen in ("cuda", "mps", "cpu")
    if expected:
        assert chosen == expected


def test_named_devices_and_errors():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(GtasrError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(GtasrError, match="no CUDA device"):
            resolve_device("cuda")
