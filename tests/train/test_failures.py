"""Failures: NaN/Inf steps are skipped and counted; SIGTERM checkpoints and exits cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from gtasr.train.checkpoints import CheckpointStore, read_state
from gtasr.train.config import config_to_dict
from gtasr.train.distributed import setup
from gtasr.train.run import train
from gtasr.train.trainer import Trainer, TrainingDiverged


def _inject_nan(monkeypatch: pytest.MonkeyPatch, bad_steps: set[int], seen: dict) -> None:
    """Make the loss NaN at the given (0-based) steps; record a weight at each step."""
    original = Trainer.compute_loss

    def compute_loss(self: Trainer, batch: dict, gen: torch.Generator):
        seen[self.step] = next(self.model.parameters()).detach().clone()
        total, parts = original(self, batch, gen)
        if self.step in bad_steps:
            total = total * float("nan")
        return total, parts

    monkeypatch.setattr(Trainer, "compute_loss", compute_loss)


def test_nonfinite_steps_are_skipped_and_counted(
    small_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[int, torch.Tensor] = {}
    _inject_nan(monkeypatch, {1, 2}, seen)
    summary = train(small_config(train={"iterations": 5}), tmp_path / "run", setup("cpu"))
    assert summary.final_step == 5 and summary.nonfinite_total == 2
    assert torch.equal(seen[1], seen[2]) and torch.equal(seen[2], seen[3])  # no update
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[3], seen[4])
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    losses = {r["step"]: r["loss"] for r in records if r["kind"] == "train"}
    assert losses[2] == "nan" and losses[3] == "nan" and isinstance(losses[4], float)


def test_nonfinite_in_a_row_aborts_and_keeps_the_last_good_checkpoint(
    small_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inject_nan(monkeypatch, set(range(2, 100)), {})
    config = small_config(train={"iterations": 20, "checkpoint_every": 2, "max_nonfinite": 3})
    with pytest.raises(TrainingDiverged, match="3 iterations in a row") as caught:
        train(config, tmp_path / "run", setup("cpu"))
    latest = CheckpointStore(tmp_path / "run").latest()
    assert latest is not None and str(latest) in str(caught.value)
    assert read_state(latest)["step"] == 2  # step 4 fell inside the NaN streak: not written


@pytest.mark.slow
@pytest.mark.parametrize("to_group", [False, True], ids=["process", "process-group"])
def test_sigterm_writes_a_checkpoint_and_exits_cleanly(
    small_config, tmp_path: Path, to_group: bool
) -> None:
    """SIGTERM to the trainer, or to its whole process group with a loader worker in it
    (as Ctrl-C and job schedulers do), writes a checkpoint and exits 0."""
    data = {"workers": 1, "degrade_on": "loader"} if to_group else {}
    config = small_config(train={"iterations": 100000, "checkpoint_every": 100000}, data=data)
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config_to_dict(config)))
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gtasr", "train", str(config_file), "-o", str(run)],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    metrics = run / "metrics.jsonl"
    while not (metrics.is_file() and metrics.read_text().count('"train"') >= 2):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    if to_group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopped by SIGTERM" in stderr
    latest = CheckpointStore(run).latest()
    assert latest is not None
    step = read_state(latest)["step"]
    assert step >= 2
    summary = json.loads(metrics.read_text().splitlines()[-1])
    assert summary["kind"] == "summary" and summary["final_step"] == step
