"""--resume continues bit for bit: 2k steps in one go == k steps + resume + k steps."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from gtasr.train.checkpoints import EMA_FILE, RAW_FILE, read_state
from gtasr.train.distributed import setup
from gtasr.train.run import train


def _final(run: Path) -> tuple[dict, dict, dict]:
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    state = read_state(latest)
    return load_file(str(latest / RAW_FILE)), load_file(str(latest / EMA_FILE)), state


def test_stage1_resume_is_bit_exact(small_config, tmp_path: Path) -> None:
    # 6 iterations: N = 4 for steps 0-2, N = 3 from step 3; the resume lands at step 2, so the
    # switch happens after resuming. MultiStepLR halves at 4, also after the resume.
    config = small_config(train={"iterations": 6, "lr_milestones": [4], "checkpoint_every": 2})
    env = setup("cpu")
    whole = train(config, tmp_path / "whole", env)
    first = train(config, tmp_path / "split", env, max_steps=2)
    second = train(config, tmp_path / "split", env, resume=True)
    assert (whole.final_step, first.final_step, second.final_step) == (6, 2, 6)
    assert second.steps_done == 4
    raw_a, ema_a, state_a = _final(tmp_path / "whole")
    raw_b, ema_b, state_b = _final(tmp_path / "split")
    assert raw_a.keys() == raw_b.keys()
    for key in raw_a:
        assert torch.equal(raw_a[key], raw_b[key]), key
        assert torch.equal(ema_a[key], ema_b[key]), key
    moments_a = state_a["optimizer"]["state"]
    moments_b = state_b["optimizer"]["state"]
    for index in moments_a:
        assert torch.equal(moments_a[index]["exp_avg_sq"], moments_b[index]["exp_avg_sq"])
    assert state_a["scheduler"] == state_b["scheduler"]
    assert state_a["scheduler"]["_last_lr"] == [config.train.lr * 0.5]
    # The EMA really moved away from the raw weights (decay 0.9 over 6 updates).
    assert any(not torch.equal(raw_a[k], ema_a[k]) for k in raw_a)
