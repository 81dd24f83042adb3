"""bench/gpu.py and bench/gpu.sh, run as a user runs them, on a machine without a GPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_gpu_bench_refuses_cleanly_without_cuda() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(
        [sys.executable, str(BENCH / "gpu.py")], env=env, capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        f"bench/gpu.py: PyTorch {torch.__version__} sees no CUDA device"
    ]


def test_gpu_script_stops_without_an_nvidia_gpu(tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "dirname").symlink_to(shutil.which("dirname"))
    bash = shutil.which("bash")
    assert bash is not None
    run = subprocess.run(
        [bash, str(BENCH / "gpu.sh")],
        env={"PATH": str(tools)},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "no NVIDIA GPU" in run.stderr and run.stdout == ""
