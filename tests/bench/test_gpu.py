"""bench/gpu.py and bench/gpu.sh on a machine without a GPU, and the output checks they make."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def gpu_bench(load_bench: Callable[[str], ModuleType]) -> ModuleType:
    return load_bench("gpu")


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


def test_gpu_script_runs_an_installed_cuda_pytorch_without_making_a_venv(tmp_path: Path) -> None:
    """Where .venv's PyTorch sees no GPU but python3's does (a GPU machine with PyTorch and no
    network), the script runs bench/gpu.py with python3 and src/ on PYTHONPATH."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("dirname", "bash"):
        (tools / name).symlink_to(shutil.which(name))
    (tools / "nvidia-smi").write_text("#!/bin/sh\necho 'Test GPU, 1.0, 80 GiB'\n")
    record = tmp_path / "called"
    (tools / "python3").write_text(
        "#!/bin/sh\n"
        '[ "$1" = -c ] && exit 0\n'  # its torch sees CUDA
        f'echo "$PYTHONPATH|$*" > {record}\n'
    )
    for name in ("nvidia-smi", "python3"):
        (tools / name).chmod(0o755)
    run = subprocess.run(
        [str(tools / "bash"), str(BENCH / "gpu.sh"), "--repeats", "3"],
        env={"PATH": str(tools)},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "Test GPU" in run.stderr and "using" in run.stderr
    assert record.read_text().strip() == (
        "src|bench/gpu.py --cuda-graphs --compile default --repeats 3"
    )


def test_output_checks_catch_nan_and_inf_and_measure_psnr(gpu_bench: ModuleType) -> None:
    reference = torch.zeros(1, 3, 8, 8)
    close = reference + 0.1  # mse 0.01 on a peak-to-peak of 2
    broken = reference.clone()
    broken[0, 1, 2, 3] = math.inf
    missing = reference.clone()
    missing[0, 0, 0, 0] = math.nan
    report = gpu_bench.check_outputs(
        {"fp16": close, "inf": broken, "nan": missing, "same": reference}, reference
    )
    assert report["fp16"] == {"finite": True, "psnr_vs_fp32_db": round(10 * math.log10(400), 2)}
    assert report["inf"] == {"finite": False}
    assert report["nan"] == {"finite": False}
    assert report["same"] == {"finite": True, "psnr_vs_fp32_db": "inf"}
