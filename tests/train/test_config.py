"""Config loading: YAML -> typed dataclasses, --set overrides, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gtasr.errors import GtasrError
from gtasr.train.config import Config, dump_config, load_config, numeric_ranges

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


MINIMAL = "stage: 1\ndata:\n  hr_dirs: [photos]\n"


def test_a_key_of_no_meaning_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GtasrError, match=r"unknown config key 'data\.cache_images'"):
        load_config(_write(tmp_path, MINIMAL + "  cache_images: true\n"))


@pytest.mark.parametrize(
    "name",
    [
        "paper_stage1",
        "paper_stage2",
        "cpu_tiny_stage1",
        "cpu_tiny_stage2",
        "cpu_compact_stage1",
        "cpu_compact_stage2",
    ],
)
def test_shipped_configs_load_and_round_trip(name: str, tmp_path: Path) -> None:
    config = load_config(CONFIGS / f"{name}.yaml")
    again = load_config(_write(tmp_path, dump_config(config)))
    assert again == config


def test_paper_configs_carry_the_release_numbers() -> None:
    one = load_config(CONFIGS / "paper_stage1.yaml")
    two = load_config(CONFIGS / "paper_stage2.yaml")
    assert (one.train.lr, one.train.betas, one.train.weight_decay) == (5e-5, [0.9, 0.9], 0.0)
    assert (one.train.lr_milestones, one.train.lr_gamma, one.train.ema_decay) == (
        [50000],
        0.5,
        0.999,
    )
    assert (one.train.iterations, one.train.batch_size, one.data.crop_size) == (500000, 32, 256)
    assert (one.schedule.power, one.schedule.num_intervals, one.loss.ta_weight) == (
        2.5,
        [4, 3],
        0.5,
    )
    assert (two.train.iterations, two.train.batch_size, two.schedule.num_intervals) == (
        2000,
        12,
        [3],
    )
    assert (two.schedule.power, two.train.reference_sync_every) == (1.0, 1000)
    assert (two.loss.dtm_weight, two.loss.stab_weight, two.loss.rect_weight) == (0.8, 0.2, 1.0)
    assert two.loss.rect_gradient is True and two.init_from


def test_set_overrides_parse_yaml_values(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    config = load_config(
        path,
        ["data.hr_dirs=[a, b]", "train.lr=1e-4", "train.grad_clip=1", "model.preset=small"],
    )
    assert config.data.hr_dirs == ["a", "b"]
    assert config.train.lr == pytest.approx(1e-4) and isinstance(config.train.lr, float)
    assert config.train.grad_clip == 1.0
    assert config.model.preset == "small"


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        (MINIMAL + "train:\n  learning_rate: 1\n", [], "unknown config key 'train.learning_rate'"),
        (MINIMAL + "bogus: 1\n", [], "unknown config key 'bogus'"),
        (MINIMAL + "train:\n  batch_size: four\n", [], "'train.batch_size': expected an integer"),
        (MINIMAL, ["train.iterations=1.5"], "'train.iterations': expected an integer"),
        (MINIMAL, ["data.crop_size=true"], "'data.crop_size': expected an integer"),
        (MINIMAL, ["train.lr=fast"], "'train.lr': expected a number"),
        (MINIMAL, ["data.hr_dirs=photos"], "'data.hr_dirs': expected a list"),
        (MINIMAL, ["train.nope=3"], "unknown config key 'train.nope'"),
        (MINIMAL, ["train.lr"], "bad --set 'train.lr'"),
        (MINIMAL, ["train.lr=[1,"], "not valid YAML"),
        (MINIMAL, ["stage=3"], "'stage': must be at least 1 and at most 2, got 3"),
        (MINIMAL, ["stage=2"], "'init_from'"),
        (MINIMAL, ["train.precision=fp8"], "'train.precision': must be one of"),
        (MINIMAL, ["data.degradation=blurry"], "'data.degradation': must be one of bicubic"),
        (MINIMAL, ["train.batch_size=0"], "'train.batch_size': must be at least 1"),
        (MINIMAL, ["train=3"], "'train': expected a mapping"),
    ],
)
def test_config_errors_name_the_key(
    tmp_path: Path, text: str, overrides: list[str], message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(GtasrError, match=r"c\.yaml") as caught:
        load_config(path, overrides)
    assert message in str(caught.value)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(GtasrError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(GtasrError, match="not valid YAML"):
        load_config(_write(tmp_path, "stage: [1\n"))


def _script_calls(tmp_path: Path, *runs: str, script: str = "train_cpu_tiny.sh") -> list[list[str]]:
    """The gtasr command lines a training script issues, recorded by a stand-in."""
    import json
    import os
    import subprocess
    import sys

    calls = tmp_path / "calls.jsonl"
    recorder = tmp_path / "gtasr"
    recorder.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    recorder.chmod(0o755)
    env = {**os.environ, "GTASR": str(recorder), "RUNS": "runs"}
    root = CONFIGS.parent
    subprocess.run(["bash", f"scripts/{script}", *runs], cwd=root, env=env, check=True)
    return [json.loads(line) for line in calls.read_text().splitlines()]


def _parse_call(call: list[str]) -> tuple[Config, str, int | None]:
    """(config with its --set values, -o folder, --until-step) of one ``gtasr train``."""
    assert call[0] == "train"
    sets = [call[i + 1] for i, word in enumerate(call) if word == "--set"]
    until = int(call[call.index("--until-step") + 1]) if "--until-step" in call else None
    return load_config(CONFIGS.parent / call[1], sets), call[call.index("-o") + 1], until


def test_ablation_runs_of_the_training_script(tmp_path: Path) -> None:
    calls = [_parse_call(call) for call in _script_calls(tmp_path)]
    runs = [folder for _, folder, _ in calls]
    names = ("ct_s1", "ta_s1", "ta_s1", "ta_s2", "ft_s1", "ft_s2", "ct_s2", "gtasr_s2")
    assert runs == [f"runs/{n}" for n in names]
    (ct1, _, ct_until), (ta1, _, ta_until), (ta1_end, _, ta_end) = calls[:3]
    # ta_s1 stops where the GTASR arm takes its Stage I, then runs to the end of its
    # iterations (no --until-step); CT-only steps are cheaper, so its arm runs more of them
    assert ta1 == ta1_end and ta_end is None and ct_until > ta_until > 0
    assert (ct1.loss.ta_weight, ta1.loss.ta_weight) == (0.0, 0.5)
    # the arms differ in L_TA only (ta_s1 keeps every checkpoint, so that step 10250 stays)
    assert ct1.data == ta1.data and ct1.model == ta1.model and ct1.schedule == ta1.schedule
    assert ct1.train.keep_checkpoints == 3
    assert ta1.train.keep_checkpoints * ta1.train.checkpoint_every >= ta1.train.iterations
    ct1.train.keep_checkpoints = ta1.train.keep_checkpoints
    assert ct1.train == ta1.train
    v2, ct2, full = (calls[index][0] for index in (3, 6, 7))
    assert (ct2.init_from, full.init_from) == (
        "runs/ct_s1",
        f"runs/ta_s1/checkpoints/step-{ta_until:08d}",
    )
    assert (ct2.loss.stab_weight, ct2.loss.rect_weight) == (0.0, 0.0)
    # the bundled model v2: the same Stage II as the GTASR arm, from the end of ta_s1
    assert v2.init_from == "runs/ta_s1"
    v2.init_from = full.init_from
    assert v2 == full
    assert (full.loss.stab_weight, full.loss.rect_weight, full.loss.rect_gradient) == (
        0.2,
        1.0,
        True,
    )
    assert ct2.train == full.train and ct2.data == full.data == ta1.data
    # Stage II trains the network Stage I made
    assert ct2.model == ta1.model and ct2.data.degradation == ta1.data.degradation


def test_the_bundled_model_is_v2_fine_tuned_on_128_px_crops(tmp_path: Path) -> None:
    """ft_s1 and ft_s2 (Finding 12): the v2 recipe's two stages again from v2's file, at
    128 px crops and batch 2, the pixels per step of the 64 px x 8 of every other run."""
    calls = [_parse_call(call) for call in _script_calls(tmp_path, "ta_s1", "ft_s1", "ft_s2")]
    (ta1, _, _), (ft1, ft1_out, ft1_until), (ft2, ft2_out, _) = calls[1:]
    assert (ft1_out, ft2_out) == ("runs/ft_s1", "runs/ft_s2")
    assert ft1.init_from == "runs/ta_s2/best.safetensors"
    assert ft2.init_from == f"runs/ft_s1/checkpoints/step-{ft1_until:08d}"
    assert (ft1.stage, ft2.stage) == (1, 2) and ft1_until < ft1.train.iterations
    for config in (ft1, ft2):
        assert (config.data.crop_size, config.train.batch_size) == (128, 2)
        assert config.data.crop_size**2 * config.train.batch_size == (
            ta1.data.crop_size**2 * ta1.train.batch_size
        )
        assert config.model == ta1.model and config.data.degradation == ta1.data.degradation
    # v2 trained on the photos of its five packages, the fine-tuning on all of them
    assert ta1.data.hr_dirs == ["data-cache/photos-v2"]
    assert ft1.data.hr_dirs == ft2.data.hr_dirs == ["data-cache/photos"]
    # a fresh, lower learning rate and the schedule's last N from the start
    assert ft1.train.lr < ta1.train.lr and ft1.schedule.num_intervals == [3]
    assert ft1.train.lr_milestones[0] > ft1_until


def test_training_script_rejects_an_unknown_run(tmp_path: Path) -> None:
    import subprocess

    with pytest.raises(subprocess.CalledProcessError):
        _script_calls(tmp_path, "ta_s1_1000")


NUMERIC_KEYS = numeric_ranges(Config)


def test_every_numeric_key_is_covered() -> None:
    """The ranges come from the dataclasses, so a new number gets one without a list here."""
    assert {"train.lr", "train.ema_decay", "data.workers", "data.crop_size", "stage"} <= set(
        NUMERIC_KEYS
    )
    assert {"train.betas", "schedule.num_intervals", "loss.ta_weight"} <= set(NUMERIC_KEYS)
    assert "data.hr_dirs" not in NUMERIC_KEYS and "train.precision" not in NUMERIC_KEYS


@pytest.mark.parametrize("key", sorted(NUMERIC_KEYS))
def test_every_number_is_range_checked(key: str, tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    allowed = NUMERIC_KEYS[key]
    below = allowed.low if allowed.low_open else allowed.low - 1
    listed = key in (
        "train.betas",
        "schedule.num_intervals",
        "train.lr_milestones",
        "data.short_side",
    )
    for bad in (".nan", ".inf", "-.inf", f"{below:g}"):
        value = f"[{bad}, {bad}]" if listed else bad
        with pytest.raises(GtasrError, match=f"'{key}") as caught:
            load_config(path, [f"{key}={value}"])
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=.inf", "'train.lr': must be above 0, got inf"),
        ("train.ema_decay=2", "'train.ema_decay': must be at least 0 and at most 1, got 2.0"),
        ("train.betas=[0.9, 1.0]", "'train.betas': must be at least 0 and below 1, got 1.0"),
        ("data.workers=-1", "'data.workers': must be at least 0 and at most 256, got -1"),
        ("data.crop_size=63", "'data.crop_size': must be a multiple of 16"),
        ("model.preset=paper", "'data.crop_size': must be a multiple of 32"),
        ("model.preset=huge", "'model.preset': unknown network preset 'huge'"),
        ("model.network={base_channels: wide}", "'model.network': network config key"),
        ("train.seed=4294967296", "'train.seed': must be at least 0 and at most 4294967295"),
        ("data.short_side=[300, 100]", "'data.short_side': expected [low, high], got [300, 100]"),
        ("data.short_side=[128]", "'data.short_side': expected [low, high], got [128]"),
    ],
)
def test_range_and_network_errors(tmp_path: Path, override: str, message: str) -> None:
    path = _write(tmp_path, MINIMAL + "  crop_size: 48\n")
    with pytest.raises(GtasrError, match=r"c\.yaml") as caught:
        load_config(path, [override])
    assert message in str(caught.value)


def test_dtm_index_fits_the_grid(tmp_path: Path) -> None:
    stage2 = MINIMAL.replace("stage: 1", "stage: 2\ninit_from: runs/one")
    path = _write(tmp_path, stage2 + "schedule:\n  num_intervals: [3]\n")
    assert load_config(path, ["loss.dtm_index=3"]).loss.dtm_index == 3
    with pytest.raises(GtasrError, match=r"'loss\.dtm_index': must be at most"):
        load_config(path, ["loss.dtm_index=4"])


def test_the_v3_script_stops_stage1_past_its_last_lr_cut_then_runs_stage2(tmp_path: Path) -> None:
    from gtasr.train.builders import lr_anchor_of

    calls = _script_calls(tmp_path, script="train_cpu_compact.sh")
    (one, one_out, one_until), (two, two_out, two_until) = (_parse_call(call) for call in calls)
    assert (one_out, two_out) == ("runs/compact_s1", "runs/compact_s2")
    # Stage I stops just past its last lr cut; Stage II starts from that checkpoint
    assert one.train.lr_milestones[-1] < one_until <= one.train.lr_milestones[-1] + 1000
    assert (one.stage, two.stage) == (1, 2)
    assert two.init_from == f"runs/compact_s1/checkpoints/step-{one_until:08d}"
    assert two_until is not None and two_until < two.train.iterations
    assert one.model == two.model and one.model.preset == "compact" and lr_anchor_of(one.model)
    assert one.data == two.data and one.data.degradation == "test"
    assert one.data.hr_dirs == ["data-cache/photos"]
    assert two.train.reference_sync_every * 2 == two.train.iterations


def test_the_v2_photo_packages_of_the_training_script_give_its_42_photos() -> None:
    """scripts/train_cpu_tiny.sh's V2_PACKAGES select the training photos v2 was trained on
    (42, docs/data-and-licences.md) and the 6 held-out photos of every run."""
    import re

    from gtasr.data.photos import load_manifest, only_packages

    script = (CONFIGS.parent / "scripts" / "train_cpu_tiny.sh").read_text()
    names = "".join(re.findall(r"^V2_PACKAGES\+?=(\S+)$", script, flags=re.MULTILINE))
    photos = only_packages(load_manifest(), names.split(",")).photos
    assert sum(photo.split == "train" for photo in photos) == 42
    assert [photo.split for photo in load_manifest().photos].count("test") == 6
    assert sum(photo.split == "test" for photo in photos) == 6
