"""RUN/best.safetensors follows the best validation score, not the last one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gtasr.train.checkpoints import EMA_FILE, checkpoint_name
from gtasr.train.distributed import setup
from gtasr.train.run import _keep_best, train
from gtasr.train.trainer import Trainer


def _shift_ema_(trainer: Trainer, amount: float) -> None:
    with torch.no_grad():
        for parameter in trainer.ema.module.parameters():
            parameter.add_(amount)


def _new_run(small_config, tmp_path: Path) -> tuple[Path, Trainer]:
    """A fresh run folder and the trainer of the small config in it, at step 0."""
    run = tmp_path / "run"
    run.mkdir()
    return run, Trainer(small_config(), run, setup("cpu"))


def _saved(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "best.safetensors"))


@pytest.mark.slow
def test_best_model_is_replaced_only_by_a_better_score(small_config, tmp_path: Path) -> None:
    run, trainer = _new_run(small_config, tmp_path)
    first = {k: v.clone() for k, v in trainer.ema.module.state_dict().items()}
    _keep_best(trainer, {"psnr_y": 20.0, "l1": 0.5}, run)
    assert json.loads((run / "best.json").read_text()) == {"step": 0, "metric": "l1", "value": 0.5}

    _shift_ema_(trainer, 0.01)
    _keep_best(trainer, {"psnr_y": 21.0, "l1": 0.6}, run)  # worse: the file keeps the first
    assert all(torch.equal(_saved(run)[k], v) for k, v in first.items())

    trainer.step = 7
    _keep_best(trainer, {"psnr_y": 22.0, "l1": 0.4, "lpips": 0.3}, run)  # LPIPS takes over
    now = trainer.ema.module.state_dict()
    assert all(torch.equal(_saved(run)[k], now[k]) for k in first)
    assert json.loads((run / "best.json").read_text()) == {
        "step": 7,
        "metric": "lpips",
        "value": 0.3,
    }


@pytest.mark.slow
def test_training_keeps_the_best_validated_model(small_config, photos: Path, tmp_path: Path):
    config = small_config(
        data={"val_dir": str(photos / "val")},
        train={"iterations": 6, "checkpoint_every": 2, "keep_checkpoints": 10},
        val={"every": 2},
    )
    run = tmp_path / "run"
    train(config, run, setup("cpu"))
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    val = {r["step"]: r["l1"] for r in records if r["kind"] == "val"}
    assert sorted(val) == [0, 2, 4, 6]
    best = json.loads((run / "best.json").read_text())
    assert best["step"] == min(val, key=val.get) and best["value"] == min(val.values())
    assert best["step"] > 0  # measured: L1 falls from 0.066 at step 0 to 0.057 at step 6
    ema = load_file(str(run / "checkpoints" / checkpoint_name(best["step"]) / EMA_FILE))
    assert all(torch.equal(_saved(run)[k], v) for k, v in ema.items())


@pytest.mark.slow
def test_a_best_model_must_stay_close_to_bicubic_psnr(small_config, tmp_path: Path) -> None:
    run, trainer = _new_run(small_config, tmp_path)
    first = {k: v.clone() for k, v in trainer.ema.module.state_dict().items()}
    _keep_best(trainer, {"psnr_y": 25.0, "l1": 0.1, "lpips": 0.5}, run, psnr_floor=24.5)
    _shift_ema_(trainer, 0.01)
    trainer.step = 3
    _keep_best(trainer, {"psnr_y": 24.4, "l1": 0.1, "lpips": 0.3}, run, psnr_floor=24.5)
    assert json.loads((run / "best.json").read_text())["step"] == 0  # better LPIPS, too far
    assert all(torch.equal(_saved(run)[k], v) for k, v in first.items())
    trainer.step = 5
    _keep_best(trainer, {"psnr_y": 24.6, "l1": 0.1, "lpips": 0.4}, run, psnr_floor=24.5)
    assert json.loads((run / "best.json").read_text()) == {
        "step": 5,
        "metric": "lpips",
        "value": 0.4,
        "psnr_y": 24.6,
        "psnr_floor": 24.5,
    }


@pytest.mark.slow
def test_the_psnr_floor_is_bicubic_psnr_of_the_validation_images(
    small_config, photos: Path, tmp_path: Path
) -> None:
    from gtasr.eval.metrics import psnr_y
    from gtasr.imageio import read_image

    config = small_config(
        data={"val_dir": str(photos / "val")},
        train={"iterations": 2, "checkpoint_every": 2},
        val={"every": 2, "lpips": False, "max_psnr_drop": 30.0},
    )
    train(config, tmp_path / "run", setup("cpu"))
    bicubic = []
    for name in ("p0.png", "p1.png"):
        lr, gt = (read_image(photos / "val" / sub / name).rgb for sub in ("lq", "gt"))
        lr_tensor = torch.from_numpy(lr).permute(2, 0, 1)[None]
        up = torch.nn.functional.interpolate(lr_tensor, scale_factor=4, mode="bicubic")
        up_uint8 = (up[0].permute(1, 2, 0).clamp(0, 1) * 255).round().double().numpy()
        bicubic.append(psnr_y(up_uint8, (gt * 255).round().astype("float64")))
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["psnr_floor"] == pytest.approx(sum(bicubic) / 2 - 30.0, abs=1e-6)
