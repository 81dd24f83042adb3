"""The detail measure the training diagnosis quotes (gtasr.eval.bands, scripts/crop_detail.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gtasr.eval.bands import detail

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "crop_detail.py"


def test_detail_is_the_mean_step_between_neighbours_in_grey_levels() -> None:
    ramp = torch.arange(16, dtype=torch.float64).expand(3, 8, 16) * 3 / 127.5 - 1
    assert detail(ramp) == pytest.approx(3.0)
    stripes = torch.tensor([-1.0, 1.0]).repeat(8).expand(3, 8, 16)
    assert detail(stripes) == pytest.approx(255.0)


def test_shrunk_photos_carry_more_detail_and_sets_are_scored(tmp_path: Path, image_tools) -> None:
    photos, gt = tmp_path / "photos", tmp_path / "gt"
    photos.mkdir()
    gt.mkdir()
    cols = np.mgrid[0:256, 0:256][1]
    image_tools.write_png(photos / "ramp.png", np.dstack([cols // 4] * 3).astype(np.uint8))
    image_tools.write_png(gt / "ramp.png", np.dstack([cols] * 3).astype(np.uint8))
    command = [sys.executable, str(SCRIPT), "--photos", str(photos), "--sets", str(gt)]
    run = subprocess.run(
        [*command, "--short-side", "64", "64", "--crop", "32", "--per-image", "3"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(run.stdout)
    assert result["training photos, own scale"] == pytest.approx(
        0.25, abs=0.04
    )  # 7 or 8 steps of 31
    assert result["training photos, short_side [64, 64]"] == pytest.approx(1.0, abs=0.03)
    assert result[str(gt)] == pytest.approx(1.0)
