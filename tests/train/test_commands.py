"""`gtasr train` and `gtasr info` at the command line: one-line errors, model description."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from gtasr.cli import main
from gtasr.fileio import file_sha256
from gtasr.modelfile import load_model
from gtasr.train.config import config_to_dict


def _config_file(config, tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(config)))
    return path


def test_train_then_info_describes_the_model(
    small_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = _config_file(small_config(train={"iterations": 2}), tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(config_file), "-o", str(run), "--set", "train.lr=2e-4"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["lr"] == 2e-4
    capsys.readouterr()
    assert main(["info", "--model", str(run / "model.safetensors")]) == 0
    out = capsys.readouterr().out
    stored = load_file(str(run / "model.safetensors"))
    count = sum(t.numel() for name, t in stored.items() if not name.startswith("gtasr."))
    assert "tiny preset" in out and f"{count:,}" in out
    assert "stage       1" in out and "steps       2" in out and "weights     ema" in out
    assert file_sha256(run / "model.safetensors") in out
    assert main(["info", "--model", str(run)]) == 0  # the latest checkpoint: raw and EMA
    out = capsys.readouterr().out
    assert "weights     raw" in out and "weights     ema" in out
    # A second fresh run into the same folder would mix two runs' checkpoints: refused.
    assert main(["train", str(config_file), "-o", str(run)]) == 2


def test_the_tiny_preset_trains_with_lr_anchor_unless_told_otherwise(
    small_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = _config_file(small_config(train={"iterations": 1}), tmp_path)
    for anchor, flags in ((True, []), (False, ["--set", "model.lr_anchor=false"])):
        run = tmp_path / f"run-{anchor}"
        assert main(["train", str(config_file), "-o", str(run), *flags]) == 0
        model, info = load_model(run / "model.safetensors")
        assert info.network["lr_skip"] is False and model.lr_anchor is anchor
        assert info.precond.get("lr_anchor", False) is anchor
    capsys.readouterr()
    assert main(["info", "--model", str(tmp_path / "run-True" / "model.safetensors")]) == 0
    assert "network     tiny preset\n" in capsys.readouterr().out


def test_overwrite_starts_a_run_again(
    small_config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = small_config(train={"iterations": 2, "checkpoint_every": 1})
    config_file = _config_file(config, tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(config_file), "-o", str(run)]) == 0
    (run / "notes.txt").write_text("mine")
    assert main(["train", str(config_file), "-o", str(run)]) == 2
    assert "add --resume to continue it or --overwrite to start again" in caplog.text
    assert main(["train", str(config_file), "-o", str(run), "--max-steps", "1", "--overwrite"]) == 0
    kept = sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir())
    assert kept == ["step-00000001"]  # the earlier run's step-2 checkpoint is gone
    assert not (run / "model.safetensors").exists()  # and so is its final model
    assert (run / "notes.txt").read_text() == "mine"  # files a run does not write stay
    with pytest.raises(SystemExit) as usage:
        main(["train", str(config_file), "-o", str(run), "--resume", "--overwrite"])
    assert usage.value.code == 2


def test_device_flag_overrides_the_config(
    small_config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_file = _config_file(small_config(), tmp_path)  # train.device: cpu
    assert main(["train", str(config_file), "-o", str(tmp_path / "r"), "--device", "gpu0"]) == 2
    assert "unknown device 'gpu0'" in caplog.text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--set", "train.bogus=1"], "unknown config key 'train.bogus'"),
        (["--set", "train.batch_size=[2]"], "'train.batch_size': expected an integer"),
        (["--set", "data.hr_dirs=[/nonexistent/photos]"], "/nonexistent/photos"),
        (["--resume"], "no checkpoint found"),
    ],
)
def test_train_errors_are_one_line(
    small_config,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    overrides: list[str],
    message: str,
) -> None:
    config_file = _config_file(small_config(), tmp_path)
    assert main(["train", str(config_file), "-o", str(tmp_path / "r"), *overrides]) == 2
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None
    text = errors[0].getMessage()
    assert message in text and "\n" not in text


def test_info_on_a_file_that_is_not_a_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bogus = tmp_path / "x.safetensors"
    bogus.write_bytes(b"not a model")
    assert main(["info", "--model", str(bogus)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and str(bogus) in errors[0]
