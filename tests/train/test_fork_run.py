"""gtasr.train.fork (scripts/fork_run.py): a run continued from another run's checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gtasr.errors import GtasrError
from gtasr.train.distributed import setup
from gtasr.train.fork import fork
from gtasr.train.trainer import Trainer


def test_the_fork_resumes_the_weights_at_the_new_rate_without_later_milestones(
    small_config, tmp_path: Path
) -> None:
    config = small_config(train={"lr": 1e-3, "lr_milestones": [1], "lr_gamma": 0.5})
    source = Trainer(config, tmp_path / "a", setup("cpu"))
    source.save_checkpoint()
    fork(tmp_path / "a", 0, tmp_path / "b", lr=2e-4)
    forked = Trainer(config, tmp_path / "b", setup("cpu"), resume=True)
    for mine, theirs in zip(forked.model.parameters(), source.model.parameters(), strict=True):
        assert torch.equal(mine, theirs)
    ours, theirs = forked.ema.state_dict()["weights"], source.ema.state_dict()["weights"]
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert forked.optimizer.param_groups[0]["lr"] == pytest.approx(2e-4)
    for _ in range(3):  # the source's milestone at step 1 would halve it
        forked.optimizer.step()
        forked.scheduler.step()
    assert forked.optimizer.param_groups[0]["lr"] == pytest.approx(2e-4)
    with pytest.raises(GtasrError, match="already exists"):
        fork(tmp_path / "a", 0, tmp_path / "b")
    with pytest.raises(GtasrError, match="no such checkpoint"):
        fork(tmp_path / "a", 5, tmp_path / "c")


def test_new_milestones_reschedule_the_fork(small_config, tmp_path: Path) -> None:
    config = small_config(train={"lr": 1e-3, "lr_milestones": [9], "lr_gamma": 0.5})
    Trainer(config, tmp_path / "a", setup("cpu")).save_checkpoint()
    fork(tmp_path / "a", 0, tmp_path / "b", milestones=[0, 3])
    forked = Trainer(config, tmp_path / "b", setup("cpu"), resume=True)
    rates = []
    for _ in range(4):
        forked.optimizer.step()
        forked.scheduler.step()
        rates.append(forked.optimizer.param_groups[0]["lr"])
    # Cut once at step 3 (step 0 lies before the fork), not at the source's step 9.
    assert rates == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4])
