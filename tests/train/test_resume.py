"""--resume continues bit for bit: 2k steps in one go == k steps + resume + k steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gtasr.errors import GtasrError
from gtasr.modelfile import read_weights
from gtasr.nets import preset_config
from gtasr.train.checkpoints import EMA_FILE, RAW_FILE, STATE_TENSORS, read_state
from gtasr.train.cost import run_cost
from gtasr.train.distributed import setup
from gtasr.train.run import train


def _final(run: Path) -> tuple[dict, dict, dict]:
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    state = read_state(latest)
    return read_weights(latest / RAW_FILE)[0], read_weights(latest / EMA_FILE)[0], state


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
    # The metrics log holds each step once although steps 3-4 ran after a checkpoint at 2.
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in lines if '"train"' in line]
    assert steps == [1, 2, 3, 4, 5, 6]
    # The EMA really moved away from the raw weights (decay 0.9 over 6 updates).
    assert any(not torch.equal(raw_a[k], ema_a[k]) for k in raw_a)


def test_until_step_counts_from_the_start_of_the_run(small_config, tmp_path: Path) -> None:
    """--max-steps counts this invocation's steps; --until-step the run's, across resumes."""
    config = small_config(train={"iterations": 6, "checkpoint_every": 10})
    env = setup("cpu")
    run = tmp_path / "run"
    assert train(config, run, env, max_steps=2).final_step == 2
    resumed = train(config, run, env, resume=True, until_step=3)
    assert (resumed.final_step, resumed.steps_done) == (3, 1)
    assert (run / "checkpoints" / "step-00000003").is_dir()  # stopping there checkpoints
    again = train(config, run, env, resume=True, until_step=3)
    assert (again.final_step, again.steps_done) == (3, 0)  # already there: no step
    assert not (run / "model.safetensors").exists()  # the run is not finished
    assert train(config, run, env, resume=True, until_step=99).final_step == 6


@pytest.mark.slow
def test_stage2_resume_restores_the_reference_network(small_config, tmp_path: Path) -> None:
    env = setup("cpu")
    train(small_config(train={"iterations": 2, "checkpoint_every": 2}), tmp_path / "one", env)
    config = small_config(
        stage=2,
        init_from=str(tmp_path / "one"),
        schedule={"power": 1.0, "num_intervals": [3]},
        loss={"lpips_weight": 0.5, "charbonnier_weight": 0.5},
        train={"iterations": 4, "checkpoint_every": 1, "reference_sync_every": 2},
    )
    train(config, tmp_path / "whole", env)
    train(config, tmp_path / "split", env, max_steps=3)  # psi re-synced at step 2
    train(config, tmp_path / "split", env, resume=True)
    raw_a, ema_a, state_a = _final(tmp_path / "whole")
    raw_b, ema_b, state_b = _final(tmp_path / "split")
    for key in raw_a:
        assert torch.equal(raw_a[key], raw_b[key]), key
        assert torch.equal(ema_a[key], ema_b[key]), key
    for key, value in state_a["reference"].items():
        assert torch.equal(value, state_b["reference"][key]), key
    # psi was re-synced to the raw weights at step 4 (the last step).
    assert all(torch.equal(state_a["reference"][f"backbone.{k}"], v) for k, v in raw_a.items())


def test_resume_refuses_a_checkpoint_of_another_network(small_config, tmp_path: Path) -> None:
    env = setup("cpu")
    train(small_config(train={"iterations": 2, "checkpoint_every": 1}), tmp_path / "run", env)
    recorded = (tmp_path / "run" / "config.yaml").read_bytes()
    narrower = {**preset_config("tiny"), "base_channels": 16}
    other = small_config(model={"network": narrower, "lr_anchor": True}, train={"iterations": 4})
    with pytest.raises(GtasrError, match="the checkpoint has base_channels 32, the config 16"):
        train(other, tmp_path / "run", env, resume=True)
    assert (tmp_path / "run" / "config.yaml").read_bytes() == recorded  # the run's, still
    # the same tensors for another preconditioning or stage are refused too
    other = small_config(model={"lr_anchor": False}, train={"iterations": 4})
    with pytest.raises(GtasrError, match="the checkpoint has lr_anchor True, the config False"):
        train(other, tmp_path / "run", env, resume=True)
    other = small_config(
        stage=2,
        init_from=str(tmp_path / "run"),
        schedule={"power": 1.0, "num_intervals": [3]},
        train={"iterations": 4},
    )
    with pytest.raises(GtasrError, match="checkpoint is of Stage 1, the config of Stage 2"):
        train(other, tmp_path / "run", env, resume=True)


def test_resume_sets_a_damaged_checkpoint_aside_and_takes_the_one_before(
    small_config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = small_config(train={"iterations": 6, "checkpoint_every": 3})
    env = setup("cpu")
    run = tmp_path / "run"
    train(config, run, env)
    expected, _, _ = _final(run)
    newest = run / "checkpoints" / "step-00000006"
    state = newest / STATE_TENSORS
    state.write_bytes(state.read_bytes()[:100])  # cut short, as by a failing disk
    (run / "model.safetensors").unlink()
    summary = train(config, run, env, resume=True)
    assert (summary.steps_done, summary.final_step) == (3, 6)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(newest) in w and "damaged-step-00000006" in w for w in warnings), warnings
    assert (run / "checkpoints" / "damaged-step-00000006").is_dir()
    raw, _, _ = _final(run)
    for key, tensor in expected.items():
        assert torch.equal(raw[key], tensor), key  # resumed at step 3, bit for bit


def test_each_invocation_records_its_threads_and_the_cpu_hours_add_them_up(
    small_config, tmp_path: Path
) -> None:
    """A run resumed with another train.threads counts each slice at its own thread count
    (gtasr.train.cost), not every slice at the config's last value."""
    env = setup("cpu")
    run = tmp_path / "run"
    before = torch.get_num_threads()
    try:
        first = train(small_config(train={"iterations": 4, "threads": 1}), run, env, max_steps=2)
        second = train(small_config(train={"iterations": 4, "threads": 2}), run, env, resume=True)
    finally:
        torch.set_num_threads(before)
    assert (first.threads, second.threads) == (1, 2)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    summaries = [json.loads(line) for line in lines if '"summary"' in line]
    assert [s["threads"] for s in summaries] == [1, 2]
    steps, hours = run_cost(run)
    assert steps == 4
    assert hours == pytest.approx((first.wall_s + 2 * second.wall_s) / 3600)
    assert run_cost(run, until=2) == (2, pytest.approx(first.wall_s / 3600))


def test_a_run_killed_before_its_summary_still_counts_its_cpu_time_to_its_last_record(
    small_config, tmp_path: Path
) -> None:
    """A process killed without a summary (power loss, a lost machine) leaves its "train"
    records, which carry the invocation's wall time and threads."""
    env = setup("cpu")
    run = tmp_path / "run"
    before = torch.get_num_threads()
    try:
        train(small_config(train={"iterations": 6, "threads": 1}), run, env, max_steps=3)
        log = run / "metrics.jsonl"
        records = [json.loads(line) for line in log.read_text().splitlines()]
        killed = [r for r in records if r["kind"] == "train"]
        log.write_text("".join(f"{json.dumps(r)}\n" for r in records if r["kind"] != "summary"))
        second = train(small_config(train={"iterations": 6, "threads": 2}), run, env, resume=True)
    finally:
        torch.set_num_threads(before)
    assert [r["step"] for r in killed] == [1, 2, 3]
    assert [r["threads"] for r in killed] == [1, 1, 1] and len({r["started"] for r in killed}) == 1
    assert killed[0]["wall_s"] < killed[1]["wall_s"] < killed[2]["wall_s"]
    steps, hours = run_cost(run)
    assert steps == 6
    assert hours == pytest.approx((killed[2]["wall_s"] + 2 * second.wall_s) / 3600)
    assert run_cost(run, until=2) == (2, pytest.approx(killed[1]["wall_s"] / 3600))


def _python_rng_version(state: dict) -> None:
    state["rng"]["python"]["__tuple__"][0] = 99  # a tuple in the JSON skeleton


def _numpy_keys_cut(state: dict) -> None:
    state["rng"]["numpy"][1] = state["rng"]["numpy"][1][:10]


def _set(key: str, value: object):
    def change(state: dict) -> None:
        state[key] = value

    return change


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (_python_rng_version, "random number generator state"),
        (_numpy_keys_cut, "random number generator state"),
        (_set("step", "abc"), "step 'abc'"),
        (_set("step", -5), "step -5"),
        (_set("ema_decay", "x"), "ema_decay 'x'"),
        (_set("nonfinite_run", -1), "nonfinite_run -1"),
    ],
    ids=[
        "rng-version-99",
        "numpy-keys-cut",
        "step-abc",
        "step-negative",
        "ema-decay-x",
        "negative-count",
    ],
)
def test_resume_sets_aside_a_state_json_with_bad_values(
    small_config, tmp_path: Path, caplog: pytest.LogCaptureFixture, change, says: str
) -> None:
    """A state.json that parses but holds values no run wrote is damage like a cut file:
    the checkpoint is set aside and the one before it resumed, bit for bit."""
    from gtasr.train.checkpoints import STATE_JSON

    config = small_config(train={"iterations": 6, "checkpoint_every": 3})
    env = setup("cpu")
    run = tmp_path / "run"
    train(config, run, env)
    expected, _, _ = _final(run)
    skeleton_file = run / "checkpoints" / "step-00000006" / STATE_JSON
    skeleton = json.loads(skeleton_file.read_text())
    change(skeleton)
    skeleton_file.write_text(json.dumps(skeleton))
    (run / "model.safetensors").unlink()
    summary = train(config, run, env, resume=True)
    assert (summary.steps_done, summary.final_step) == (3, 6)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(says in w and "damaged-step-00000006" in w for w in warnings), warnings
    raw, _, _ = _final(run)
    assert all(torch.equal(raw[key], tensor) for key, tensor in expected.items())
