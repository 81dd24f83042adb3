"""gtasr evaluate: pairing by stem, errors naming the pair, reference numbers."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from gtasr.cli import main
from gtasr.eval.evaluate import evaluate_pairs, match_pairs


def _save(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def _noise_image(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3))


def _run(argv, caplog) -> tuple[int, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        code = main(argv)
    return code, [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_bicubic_baseline_matches_reference_numbers(shared_data, tmp_path, one_thread):
    """Pillow bicubic x4 of the 32 LR images: PSNR-Y 24.14, SSIM-Y 0.628, LPIPS-alex 0.604."""
    sample = shared_data / "imagenet-test-sample"
    for lq in sorted((sample / "lq").glob("*.png")):
        image = Image.open(lq).convert("RGB")
        image.resize((image.width * 4, image.height * 4), Image.BICUBIC).save(tmp_path / lq.name)
    pairs = match_pairs(tmp_path, sample / "gt")
    assert len(pairs) == 32
    result = evaluate_pairs(pairs, ["psnr", "ssim", "lpips"])
    means = result.means()
    assert result.errors == []
    assert means["psnr"] == pytest.approx(24.14, abs=0.02)
    assert means["ssim"] == pytest.approx(0.628, abs=0.005)
    assert means["lpips"] == pytest.approx(0.604, abs=0.003)


def test_cli_writes_json_with_per_image_values(tmp_path, capsys):
    gt = _noise_image(0, 24, 32) * 250 // 255
    sr = gt + 4  # a grey offset of 4 levels, no clipping
    _save(tmp_path / "gt/a.png", gt)
    _save(tmp_path / "sr/a.png", sr)
    _save(tmp_path / "gt/b.bmp", gt[:, ::-1])  # matched by stem whatever the extension
    _save(tmp_path / "sr/b.png", gt[:, ::-1])
    out = tmp_path / "scores.json"
    argv = ["evaluate", "--sr", str(tmp_path / "sr"), "--gt", str(tmp_path / "gt")]
    code = main([*argv, "--metrics", "psnr,ssim", "--per-image", "--time", "-o", str(out)])
    assert code == 0
    document = json.loads(out.read_text())
    assert document["count"] == 2 and document["metrics"] == ["psnr", "ssim"]
    assert set(document["per_image"]) == {"a", "b"}
    assert document["per_image"]["b"]["psnr"] == "inf"  # identical pixels
    assert document["per_image"]["a"]["psnr"] == pytest.approx(20 * np.log10(255 / (4 * 219 / 255)))
    assert set(document["seconds_per_image"]) == {"read", "psnr", "ssim"}
    table = capsys.readouterr().out
    assert "mean (2)" in table and "seconds/image" in table


def test_an_existing_report_is_kept_unless_overwrite(tmp_path, caplog):
    _save(tmp_path / "gt/a.png", _noise_image(0, 16, 16))
    _save(tmp_path / "sr/a.png", _noise_image(1, 16, 16))
    out = tmp_path / "scores.json"
    out.write_text("keep")
    argv = ["evaluate", "--sr", str(tmp_path / "sr"), "--gt", str(tmp_path / "gt"), "-o", str(out)]
    code, errors = _run([*argv, "--metrics", "psnr"], caplog)
    assert code == 2 and errors == [
        f"gtasr evaluate: error: {out} exists; use --overwrite to replace"
    ]
    assert out.read_text() == "keep"
    assert main([*argv, "--metrics", "psnr", "--overwrite"]) == 0
    assert json.loads(out.read_text())["count"] == 1


def test_missing_partner_is_a_one_line_error_naming_the_file(tmp_path, caplog):
    _save(tmp_path / "gt/a.png", _noise_image(0, 16, 16))
    _save(tmp_path / "sr/a.png", _noise_image(0, 16, 16))
    _save(tmp_path / "sr/extra.png", _noise_image(1, 16, 16))
    argv = ["evaluate", "--sr", str(tmp_path / "sr"), "--gt", str(tmp_path / "gt")]
    code, errors = _run([*argv, "--metrics", "psnr"], caplog)
    assert code == 2
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "extra.png" in errors[0] and "no image of the same stem" in errors[0]


def test_size_mismatch_names_the_pair_and_other_pairs_are_scored(tmp_path, caplog):
    _save(tmp_path / "gt/a.png", _noise_image(0, 16, 16))
    _save(tmp_path / "sr/a.png", _noise_image(0, 16, 16))
    _save(tmp_path / "gt/b.png", _noise_image(1, 16, 16))
    _save(tmp_path / "sr/b.png", _noise_image(1, 16, 20))
    out = tmp_path / "scores.json"
    argv = ["evaluate", "--sr", str(tmp_path / "sr"), "--gt", str(tmp_path / "gt")]
    code, errors = _run([*argv, "--metrics", "psnr", "-o", str(out)], caplog)
    assert code == 1  # some pairs failed, the others were scored
    mismatch = [e for e in errors if "b.png" in e]
    assert len(mismatch) == 1
    assert str(tmp_path / "sr/b.png") in mismatch[0] and str(tmp_path / "gt/b.png") in mismatch[0]
    assert "20x16" in mismatch[0] and "16x16" in mismatch[0]
    document = json.loads(out.read_text())
    assert list(document["per_image"]) == ["a"] and len(document["errors"]) == 1


def test_without_gt_only_no_reference_metrics(tmp_path, caplog, shared_data):
    _save(tmp_path / "sr/x.png", np.asarray(Image.open(shared_data / "realset65/dog.png")))
    code, errors = _run(["evaluate", "--sr", str(tmp_path / "sr"), "--metrics", "psnr"], caplog)
    assert code == 2 and "need ground truth" in errors[0]
    out = tmp_path / "niqe.json"
    assert main(["evaluate", "--sr", str(tmp_path / "sr"), "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["metrics"] == ["niqe"] and document["gt"] is None
    assert 2.0 < document["per_image"]["x"]["niqe"] < 30.0


def test_two_files_with_one_stem_are_rejected(tmp_path, caplog):
    _save(tmp_path / "sr/a.png", _noise_image(0, 16, 16))
    _save(tmp_path / "sr/a.jpg", _noise_image(0, 16, 16))
    code, errors = _run(["evaluate", "--sr", str(tmp_path / "sr")], caplog)
    assert code == 2 and "same stem" in errors[0]


def test_image_too_small_for_lpips_is_reported_and_psnr_still_scored(tmp_path, caplog):
    _save(tmp_path / "gt/a.png", _noise_image(0, 16, 16))
    _save(tmp_path / "sr/a.png", _noise_image(1, 16, 16))
    out = tmp_path / "scores.json"
    argv = ["evaluate", "--sr", str(tmp_path / "sr"), "--gt", str(tmp_path / "gt")]
    code, errors = _run([*argv, "--metrics", "psnr,lpips", "-o", str(out)], caplog)
    assert code == 1
    assert any("a.png: lpips: needs images of at least 31x31" in e for e in errors)
    scores = json.loads(out.read_text())["per_image"]["a"]
    assert scores["lpips"] == "nan" and 0 < scores["psnr"] < 20
