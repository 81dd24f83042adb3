"""scripts/bundle_model.py: the bundled file keeps the weights and records every run's config."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from gtasr.infer.upscaler import bundled_model_path
from gtasr.modelfile import CONVENTION_TENSORS, read_info, save_described

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bundle_model.py"


def _run_folder(root: Path, name: str, config: str) -> Path:
    run = root / name
    run.mkdir()
    shutil.copy(bundled_model_path(), run / "model.safetensors")
    (run / "config.yaml").write_text(config, encoding="utf-8")
    return run


def test_a_chain_of_runs_is_recorded_in_training_order(tmp_path: Path) -> None:
    first = _run_folder(tmp_path, "ft_s1", "stage: 1\ninit_from: runs/ta_s2/best.safetensors\n")
    last = _run_folder(tmp_path, "ft_s2", "stage: 2\ninit_from: runs/ft_s1\n")
    target = tmp_path / "bundled.safetensors"
    command = [
        sys.executable,
        str(SCRIPT),
        str(first),
        str(last),
        "--description",
        "tiny, two runs",
    ]
    subprocess.run([*command, "-o", str(target)], check=True, timeout=120)
    info = read_info(target)
    assert info.extra["description"] == "tiny, two runs"
    documents = list(yaml.safe_load_all(info.extra["training_config"]))
    assert [document["stage"] for document in documents] == [1, 2]
    assert documents[1]["init_from"] == "runs/ft_s1"
    assert info.extra["training_config"].startswith("# ft_s1\n")
    bundled, source = load_file(str(target)), load_file(str(last / "model.safetensors"))
    assert bundled.keys() == source.keys()
    assert all(torch.equal(bundled[key], source[key]) for key in source)


def test_a_model_fine_tuned_from_a_bundled_one_keeps_the_whole_chain(tmp_path: Path) -> None:
    """--after: the configs the starting model records come before the new runs'."""
    earlier = tmp_path / "earlier.safetensors"
    first = _run_folder(tmp_path, "ft_s1", "stage: 1\ninit_from: bundled\n")
    second = _run_folder(tmp_path, "ft_s2", "stage: 2\ninit_from: runs/ft_s1\n")
    bundle = [sys.executable, str(SCRIPT), "--description", "d"]
    subprocess.run([*bundle, str(first), str(second), "-o", str(earlier)], check=True, timeout=120)
    third = _run_folder(tmp_path, "ft2_s1", f"stage: 1\ninit_from: {earlier}\n")
    fourth = _run_folder(tmp_path, "ft2_s2", "stage: 2\ninit_from: runs/ft2_s1\n")
    target = tmp_path / "later.safetensors"
    command = [*bundle, str(third), str(fourth), "--after", str(earlier), "-o", str(target)]
    subprocess.run(command, check=True, timeout=120)
    text = read_info(target).extra["training_config"]
    documents = list(yaml.safe_load_all(text))
    assert [document["stage"] for document in documents] == [1, 2, 1, 2]
    assert [document["init_from"] for document in documents] == [
        "bundled",
        "runs/ft_s1",
        str(earlier),
        "runs/ft2_s1",
    ]
    headings = [line for line in text.splitlines() if line.startswith("# ")]
    assert headings == ["# ft_s1", "# ft_s2", "# ft2_s1", "# ft2_s2"]


def test_half_stores_float16_weights_that_load_as_the_same_model(tmp_path: Path) -> None:
    """--half: weights as float16 (switch tensors exact), a file about half the size, and
    the same upscaled image to within float16 rounding."""
    import numpy as np

    from gtasr.infer.upscaler import Upscaler

    run = _run_folder(tmp_path, "compact_s2", "stage: 2\ninit_from: runs/compact_s1\n")
    full_weights = {
        name: tensor.float() for name, tensor in load_file(str(run / "model.safetensors")).items()
    }
    save_described(run / "model.safetensors", full_weights, read_info(run / "model.safetensors"))
    target = tmp_path / "half.safetensors"
    command = [sys.executable, str(SCRIPT), str(run), "--half", "--description", "d"]
    subprocess.run([*command, "-o", str(target)], check=True, timeout=120)
    half, full = load_file(str(target)), load_file(str(run / "model.safetensors"))
    assert half.keys() == full.keys()
    for name, tensor in full.items():
        if name in CONVENTION_TENSORS:
            assert torch.equal(half[name], tensor)
        else:
            assert half[name].dtype == torch.float16
            assert torch.equal(half[name], tensor.half())
    assert target.stat().st_size < 0.6 * (run / "model.safetensors").stat().st_size
    image = np.random.default_rng(3).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    outputs = [
        Upscaler.from_pretrained(path, device="cpu", backend="torch").upscale(image, seed=0)
        for path in (target, run / "model.safetensors")
    ]
    difference = np.abs(outputs[0].astype(int) - outputs[1].astype(int))
    assert outputs[0].shape == (96, 80, 3) and difference.max() <= 2
