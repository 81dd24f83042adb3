"""The one device resolver: auto's order of preference, named devices and their errors."""

from __future__ import annotations

import pytest
import torch

from gtasr.devices import resolve_device
from gtasr.errors import GtasrError


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """``machine(cuda=N, mps=bool)``: make PyTorch report these accelerators."""

    def pretend(cuda: int = 0, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return pretend


def test_auto_prefers_cuda_then_mps_then_cpu(machine) -> None:
    machine(cuda=2, mps=True)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 1)  # torchrun rank 3
    machine(cuda=0, mps=True)
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("auto", allow_mps=False) == torch.device("cpu")  # process groups
    machine(cuda=0, mps=False)
    assert resolve_device("auto") == torch.device("cpu")


def test_named_devices_are_checked(machine) -> None:
    machine(cuda=0, mps=False)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(GtasrError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(GtasrError, match="sees no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(GtasrError, match="MPS is not usable"):
        resolve_device("mps")
    machine(cuda=2, mps=True)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda", 0)
    assert resolve_device("mps") == torch.device("mps")


def test_devices_without_data_and_missing_gpus_are_refused(machine) -> None:
    machine(cuda=1, mps=False)
    with pytest.raises(GtasrError, match="unknown device 'meta'"):
        resolve_device("meta")
    with pytest.raises(GtasrError, match=r"'cuda:1' requested, but PyTorch sees 1 GPU"):
        resolve_device("cuda:1")
