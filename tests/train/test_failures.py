"""Failures: NaN/Inf steps are skipped and counted, NaN/Inf weights stop the run, an error
ends the process even with loader workers, signals checkpoint and exit with their codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
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


def test_weights_that_become_nonfinite_stop_the_run_without_a_checkpoint(
    small_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Trainer.train_step

    def poisoning(self: Trainer, batches) -> dict:
        values = original(self, batches)
        if self.step == 3:  # an update that overflowed: finite loss, infinite weights
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return values

    monkeypatch.setattr(Trainer, "train_step", poisoning)
    config = small_config(train={"iterations": 4, "checkpoint_every": 2, "max_nonfinite": 100})
    with pytest.raises(TrainingDiverged, match="NaN or infinite values at step 4") as caught:
        train(config, tmp_path / "run", setup("cpu"))
    assert "step-00000002" in str(caught.value)  # the last good checkpoint is named
    store = CheckpointStore(tmp_path / "run")
    assert [p.name for p in store.candidates()] == ["step-00000002"]
    assert not (tmp_path / "run" / "model.safetensors").exists()


FAILING_AFTER_FIRST_BATCH = textwrap.dedent(
    """
    import sys
    from gtasr.cli import main
    from gtasr.train.trainer import Trainer
    original = Trainer.train_step
    def failing(self, batches):
        if self.step >= 1:
            raise RuntimeError("failure after the first batch")
        return original(self, batches)
    Trainer.train_step = failing
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_an_error_with_a_loader_worker_ends_the_process(small_config, tmp_path: Path) -> None:
    """The loader worker ignores SIGTERM; left running, it kept the interpreter from exiting."""
    config = small_config(data={"workers": 1, "degrade_on": "loader"})
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config_to_dict(config)))
    script = tmp_path / "failing.py"
    script.write_text(FAILING_AFTER_FIRST_BATCH)
    proc = subprocess.run(
        [sys.executable, str(script), "train", str(config_file), "-o", str(tmp_path / "run")],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=120,  # the hang this guards against lasted for ever
    )
    assert proc.returncode == 1, proc.stderr
    assert "RuntimeError: failure after the first batch" in proc.stderr
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert metrics.count('"train"') == 1  # the first batch was trained on


@pytest.mark.slow
@pytest.mark.parametrize(
    ("to_group", "signum", "code"),
    [(False, signal.SIGTERM, 143), (True, signal.SIGINT, 130)],
    ids=["sigterm-to-process", "sigint-to-process-group"],
)
def test_a_signal_writes_a_checkpoint_and_exits_with_its_code(
    small_config, tmp_path: Path, to_group: bool, signum: int, code: int
) -> None:
    """SIGTERM to the trainer, or Ctrl-C's SIGINT to its whole process group with a loader
    worker in it, writes a checkpoint, then exits 143 or 130 (128 + the signal)."""
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
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert f"stopped by {signal.Signals(signum).name}" in stderr
    latest = CheckpointStore(run).latest()
    assert latest is not None
    step = read_state(latest)["step"]
    assert step >= 2
    summary = json.loads(metrics.read_text().splitlines()[-1])
    assert summary["kind"] == "summary" and summary["final_step"] == step


@pytest.mark.slow
def test_a_full_disk_at_a_checkpoint_is_one_line_and_exit_2(small_config, tmp_path: Path) -> None:
    """A checkpoint (safetensors) that cannot be written stops training with exit 2 and one
    line naming it; no checkpoint is left half-written."""
    import resource

    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config_to_dict(small_config())))
    run = tmp_path / "run"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    proc = subprocess.run(
        [sys.executable, "-m", "gtasr", "train", str(config_file), "-o", str(run)],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    error = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "cannot write (File too large)" in error[0], proc.stderr
    assert CheckpointStore(run).latest() is None
    leftovers = [p for p in run.rglob("*") if ".tmp" in p.name or ".partial" in p.name]
    assert leftovers == []


@pytest.mark.slow
def test_a_second_trainer_on_a_run_folder_is_refused_and_a_dead_ones_lock_taken_over(
    small_config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While a trainer runs, another on its folder exits 2 naming the first one's PID and
    touches nothing; once the first is killed (SIGKILL: no clean-up), the lock it left is
    taken over with a warning."""
    from gtasr.cli import main

    config = small_config(train={"iterations": 100000, "checkpoint_every": 2})
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config_to_dict(config)))
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "gtasr", "train", str(config_file), "-o", str(run)],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while CheckpointStore(run).latest() is None:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        argv = ["train", str(config_file), "-o", str(run), "--resume", "--max-steps", "1"]
        for extra in ([], ["--overwrite"]):
            caplog.clear()
            assert main([*argv[:4], *extra] if extra else argv) == 2
            errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
            assert any(f"another trainer (PID {first.pid})" in e for e in errors), errors
        assert first.poll() is None  # nothing of the first run was touched
        first.kill()
        first.wait(timeout=60)
        caplog.clear()
        assert main(argv) == 0
        notes = [r.getMessage() for r in caplog.records]
        assert any(f"taking over the lock of PID {first.pid}" in n for n in notes), notes
    finally:
        first.kill()
        first.wait(timeout=60)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines if r["kind"] == "train"]
    assert steps == sorted(set(steps))  # no record twice
