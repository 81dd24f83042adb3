"""Training-state storage: exact round trips, pruning, and crash safety under SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from gtasr.modelfile import read_info
from gtasr.nets import preset_config
from gtasr.train.checkpoints import (
    EMA_FILE,
    RAW_FILE,
    CheckpointStore,
    ModelMeta,
    read_state,
    resolve_checkpoint,
)
from gtasr.train.state import capture_rng_state, pack, restore_rng_state, unpack

PRECOND = {"sigma_data": 0.5, "sigma_scale": 0.1, "noise_offset": 0.002}
META = ModelMeta(network=preset_config("tiny"), precond=PRECOND, stage=1)


def _optimiser_state() -> tuple[torch.nn.Module, torch.optim.Optimizer, object]:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.9))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2], gamma=0.5)
    for _ in range(3):
        net(torch.randn(4, 3)).square().sum().backward()
        opt.step()
        sched.step()
    return net, opt, sched


def test_pack_round_trips_optimizer_scheduler_and_odd_values() -> None:
    _, opt, sched = _optimiser_state()
    value = {
        "opt": opt.state_dict(),
        "sched": sched.state_dict(),
        "odd": (1, float("inf"), Counter({5: 2}), {3: "x"}, None, [True]),
    }
    skeleton, tensors = pack(value)
    restored = unpack(skeleton, tensors)
    assert restored["odd"] == value["odd"]
    assert isinstance(restored["sched"]["milestones"], Counter)
    assert restored["sched"] == value["sched"]
    for index, moments in value["opt"]["state"].items():
        for key, tensor in moments.items():
            assert torch.equal(restored["opt"]["state"][index][key], tensor)
    assert restored["opt"]["param_groups"] == value["opt"]["param_groups"]


def test_rng_states_restore_the_same_draws() -> None:
    state = capture_rng_state()
    skeleton, tensors = pack(state)
    first = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(unpack(skeleton, tensors))
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_store_keeps_last_k_and_points_latest(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep=2)
    weights = {"w": torch.arange(6.0).reshape(2, 3)}
    assert store.latest() is None
    for step in (10, 20, 30):
        store.save(step, META, weights, {"w": weights["w"] + step}, {"step": step})
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert kept == ["step-00000020", "step-00000030"]
    latest = store.latest()
    assert latest is not None and latest.name == "step-00000030"
    assert resolve_checkpoint(tmp_path) == latest
    assert read_state(latest)["step"] == 30
    info = read_info(latest / EMA_FILE)
    assert (info.iteration, info.weights, info.stage) == (30, "ema", 1)
    assert read_info(latest / RAW_FILE).weights == "raw"


KILLER = textwrap.dedent(
    """
    import sys, time, pathlib, torch
    import gtasr.train.checkpoints as ck
    from gtasr.nets import preset_config
    run, marker = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    original = ck.save_model
    calls = []
    def slow_save(path, *args, **kwargs):
        original(path, *args, **kwargs)
        calls.append(path)
        if len(calls) == 3:      # second checkpoint, after its raw file is on disk
            marker.write_text("writing")
            time.sleep(60)
    ck.save_model = slow_save
    store = ck.CheckpointStore(run, keep=3)
    precond = {"sigma_data": 0.5, "sigma_scale": 0.1, "noise_offset": 0.002}
    meta = ck.ModelMeta(network=preset_config("tiny"), precond=precond, stage=1)
    big = {"w": torch.ones(256, 1024)}
    for step in (1, 2):
        store.save(step, meta, big, big, {"step": step, "m": torch.full((256, 1024), step)})
    """
)


def test_sigkill_during_checkpoint_writing_keeps_a_loadable_latest(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run"), str(marker)])
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, "writer exited before reaching the second checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    root = tmp_path / "run" / "checkpoints"
    assert any(p.name.startswith(".partial-") for p in root.iterdir())
    latest = CheckpointStore(tmp_path / "run").latest()
    assert latest is not None and latest.name == "step-00000001"
    state = read_state(latest)
    assert state["step"] == 1 and torch.equal(state["m"], torch.full((256, 1024), 1))
    assert read_info(latest / RAW_FILE).iteration == 1
    # The next save of a fresh process clears the leftover and moves latest on.
    store = CheckpointStore(tmp_path / "run")
    store.save(2, META, {"w": torch.zeros(2)}, {"w": torch.zeros(2)}, {"step": 2})
    assert not any(p.name.startswith(".partial-") for p in root.iterdir())
    assert store.latest().name == "step-00000002"
