"""scripts/pack_device_data.py and scripts/device_burst.sh, on the CPU with tiny photos.

The pack holds shrunk photos, the validation pairs and float16 perceptual weights that
gtasr's lookup reads from ``GTASR_WEIGHTS_DIR``; the burst trains both stages from it and
leaves at most 8 files of under 16 MiB that continue on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gtasr.perceptual.weights import (
    ENV_WEIGHTS_DIR,
    TORCHVISION_FILES,
    WeightsNotFoundError,
    find_weights,
    head_candidates,
    trunk_candidates,
)

REPO = Path(__file__).resolve().parents[1]
PACK_SCRIPT = REPO / "scripts" / "pack_device_data.py"
BURST_SCRIPT = REPO / "scripts" / "device_burst.sh"
SHORT_SIDE = 64
PHOTOS = {"wide.png": (160, 96), "small.png": (80, 48), "sub/alpha.png": (80, 80)}
"""Relative name -> (width, height) of the synthetic training photos."""
TINY = [
    "--set",
    "data.crop_size=32",
    "--set",
    "data.short_side=[32,64]",
    "--set",
    "train.batch_size=1",
    "--set",
    "data.workers=0",
    "--set",
    "val.max_images=1",
    "--set",
    "train.threads=1",
]
"""Overrides that make a step of either stage cheap on one CPU thread."""
ENV_LABEL = f"${ENV_WEIGHTS_DIR}"


def _installed_weights() -> None:
    """Skip where the perceptual weights are not installed (``make venv`` installs them)."""
    try:
        find_weights("the vgg16 trunk", trunk_candidates("vgg16", None))
    except WeightsNotFoundError as error:
        pytest.skip(f"perceptual weights not installed: {error}")


def _photo(path: Path, size: tuple[int, int], seed: int) -> None:
    """A random-texture image of ``size``, RGBA when its name says so."""
    width, height = size
    channels = 4 if "alpha" in path.name else 3
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _inputs(root: Path) -> tuple[Path, Path]:
    """Synthetic training photos and a gt/lq validation folder under ``root``."""
    photos, testset = root / "photos", root / "testset"
    for seed, (name, size) in enumerate(PHOTOS.items()):
        _photo(photos / name, size, seed)
    for side, size in (("gt", (32, 32)), ("lq", (8, 8))):
        _photo(testset / side / "val.png", size, 9)
    return photos, testset


def _pack(root: Path, *options: str) -> subprocess.CompletedProcess[str]:
    photos, testset = _inputs(root)
    command = [sys.executable, str(PACK_SCRIPT), "--photos", str(photos), "--testset"]
    command += [str(testset), "--short-side", str(SHORT_SIDE), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pack of the synthetic photos, made by the script."""
    _installed_weights()
    root = tmp_path_factory.mktemp("pack")
    done = _pack(root, "-o", str(root / "pack"))
    assert done.returncode == 0, done.stderr
    assert "total" in done.stdout
    return root / "pack"


def test_photos_are_shrunk_to_the_short_side_and_never_enlarged(pack: Path) -> None:
    for name, (width, height) in PHOTOS.items():
        with Image.open((pack / "photos" / name).with_suffix(".jpg")) as packed:
            assert packed.format == "JPEG" and packed.mode == "RGB"
            shorter = min(width, height)
            assert min(packed.size) == min(shorter, SHORT_SIDE)
            if shorter <= SHORT_SIDE:
                assert packed.size == (width, height)
            else:
                assert abs(packed.width / packed.height - width / height) < 0.02
    assert sorted(p.name for p in (pack / "testset").rglob("*.png")) == ["val.png", "val.png"]


def _find(candidates, arch: str, from_env: bool):
    """The weights found among ``candidates(arch)``: only (or all but) the
    ``GTASR_WEIGHTS_DIR`` place."""
    places = [c for c in candidates(arch, None) if (c.label == ENV_LABEL) == from_env]
    return find_weights(arch, places)


@pytest.mark.parametrize("arch", ["vgg16", "alexnet"])
def test_weights_read_back_from_gtasr_weights_dir_to_float16_precision(
    pack: Path, arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_WEIGHTS_DIR, raising=False)
    original, _ = _find(trunk_candidates, arch, from_env=False)
    heads, _ = _find(head_candidates, arch, from_env=False)
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(pack / "weights"))
    packed, path = _find(trunk_candidates, arch, from_env=True)
    packed_heads, _ = _find(head_candidates, arch, from_env=True)
    assert path == pack / "weights" / TORCHVISION_FILES[arch]
    stored = torch.load(path, map_location="cpu", weights_only=True)
    assert {tensor.dtype for tensor in stored.values()} == {torch.float16}
    assert packed.keys() == original.keys()
    for key, tensor in original.items():
        assert torch.equal(packed[key], tensor.half().float()), key
    assert all(torch.equal(packed_heads[key], heads[key]) for key in heads)


def test_a_pack_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    _installed_weights()
    done = _pack(tmp_path, "-o", str(tmp_path / "pack"), "--limit-mib", "0.5")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "over the 0.5 MiB" in done.stderr


def _gtasr(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gtasr", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=cwd)


@pytest.fixture(scope="module")
def burst(pack: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$OUT of a burst on the CPU: a 2-step probe, then a budget already spent (one step
    of each stage)."""
    root = tmp_path_factory.mktemp("burst")
    env = os.environ | {
        "PACK": str(pack),
        "DEVICE": "cpu",
        "BUDGET_S": "1",
        "PROBE_STEPS": "2",
        "RUNS": str(root / "runs"),
        "OUT": str(root / "out"),
        "PYTHON": sys.executable,
    }
    done = subprocess.run(
        ["bash", str(BURST_SCRIPT), *TINY],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "out"


@pytest.mark.slow
def test_the_burst_returns_at_most_eight_small_files(burst: Path) -> None:
    files = [path for path in burst.rglob("*") if path.is_file()]
    assert 0 < len(files) <= 8
    assert all(path.stat().st_size < 16 << 20 for path in files)
    assert all(len(path.relative_to(burst).parts) <= 3 for path in files)
    summary = json.loads((burst / "summary.json").read_text(encoding="utf-8"))
    assert summary["plan"]["probe_steps_per_s"] > 0
    assert summary["stage1"]["steps"] == summary["plan"]["stage1_iterations"] == 1
    assert summary["stage2"]["steps"] == summary["plan"]["stage2_iterations"] == 1
    assert summary["stage2"]["last_validation"]["psnr_y"] > 0


@pytest.mark.slow
def test_the_stage2_model_loads_with_gtasr(burst: Path) -> None:
    done = _gtasr("info", "--model", str(burst / "stage2" / "model.safetensors"))
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_the_stage1_checkpoint_starts_a_cpu_stage2(burst: Path, pack: Path, tmp_path: Path) -> None:
    (checkpoint,) = (burst / "stage1").iterdir()
    run = tmp_path / "stage2"
    done = _gtasr(
        "train",
        "configs/gpu_burst_stage2.yaml",
        "-o",
        str(run),
        "--device",
        "cpu",
        "--set",
        f"init_from={checkpoint}",
        "--set",
        f"data.hr_dirs=[{pack / 'photos'}]",
        "--set",
        "data.val_dir=null",
        "--set",
        "train.iterations=1",
        *TINY,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run / "model.safetensors").is_file()
