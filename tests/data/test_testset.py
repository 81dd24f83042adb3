"""``gtasr make-testset`` through the command line: outputs, determinism and bad input."""

from __future__ import annotations

import logging

import numpy as np
import PIL.Image
import pytest

from gtasr.cli import main
from gtasr.data.testset import ground_truth, resize_shorter_side


@pytest.fixture
def photos(tmp_path, image_tools):
    folder = tmp_path / "hr"
    folder.mkdir()
    image_tools.write_png(folder / "wide.png", image_tools.textured(60, 90, seed=1))
    image_tools.write_png(folder / "tall.png", image_tools.textured(100, 48, seed=2))
    PIL.Image.fromarray(image_tools.textured(64, 64, seed=3)).save(folder / "sq.jpg", quality=92)
    return folder


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_writes_gt_and_lq_pairs_byte_identical_for_the_same_seed(photos, tmp_path):
    args = ["make-testset", "--hr", str(photos), "--size", "32", "--seed", "4"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    names = {"sq", "tall", "wide"}
    assert set(first) == {f"gt/{n}.png" for n in names} | {f"lq/{n}.png" for n in names}
    assert first == second
    for name in names:
        with PIL.Image.open(tmp_path / "a" / "gt" / f"{name}.png") as gt:
            assert gt.size == (32, 32) and gt.mode == "RGB"
        with PIL.Image.open(tmp_path / "a" / "lq" / f"{name}.png") as lq:
            assert lq.size == (8, 8)
    assert main([*args[:-1], "5", "-o", str(tmp_path / "c")]) == 0
    other = _files(tmp_path / "c")
    assert all(other[f"gt/{n}.png"] == first[f"gt/{n}.png"] for n in names)
    assert any(other[f"lq/{n}.png"] != first[f"lq/{n}.png"] for n in names)


def test_existing_pairs_are_replaced_only_with_overwrite(photos, tmp_path, caplog):
    args = ["make-testset", "--hr", str(photos), "--size", "32", "-o", str(tmp_path / "set")]
    assert main(args) == 0
    (tmp_path / "set" / "lq" / "sq.png").write_bytes(b"keep")
    assert main([*args, "--seed", "1"]) == 2
    assert "exists" in caplog.text and "--overwrite" in caplog.text
    assert (tmp_path / "set" / "lq" / "sq.png").read_bytes() == b"keep"
    assert main([*args, "--seed", "1", "--overwrite"]) == 0
    assert (tmp_path / "set" / "lq" / "sq.png").read_bytes() != b"keep"


def test_count_and_train_preset(photos, tmp_path):
    out = tmp_path / "two"
    code = main(
        ["make-testset", "--hr", str(photos), "-o", str(out), "--size", "32", "--count", "2"]
    )
    assert code == 0
    assert len(list((out / "gt").iterdir())) == 2 == len(list((out / "lq").iterdir()))
    harsh = tmp_path / "harsh"
    args = ["make-testset", "--hr", str(photos), "--size", "32", "--preset", "train"]
    assert main([*args, "-o", str(harsh)]) == 0
    assert len(list((harsh / "lq").iterdir())) == 3


def test_ground_truth_is_the_centre_of_the_resized_photo():
    rows, cols = np.mgrid[0:40, 0:80]
    image = np.dstack([cols / 79, rows / 39, np.zeros_like(rows)]).astype(np.float32)
    resized = resize_shorter_side(image, 20)
    assert resized.shape == (20, 40, 3)
    gt = ground_truth(image, 20)
    assert gt.shape == (20, 20, 3)
    np.testing.assert_allclose(gt.mean(axis=(0, 1))[:2], [0.5, 0.5], atol=0.02)  # centred
    assert np.allclose(gt * 255, np.round(gt * 255), atol=1e-4)


def _error_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_bad_inputs_are_skipped_with_one_warning(photos, image_tools, tmp_path, caplog):
    image_tools.truncated_jpeg(photos / "broken.jpg")
    image_tools.write_png(photos / "dot.png", np.zeros((1, 1, 3), np.uint8))
    image_tools.bomb_png(photos / "bomb.png")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        code = main(["make-testset", "--hr", str(photos), "-o", str(out), "--size", "32"])
    assert code == 1
    lines = _error_lines(caplog)
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "broken.jpg" in lines[0] and "truncated" in lines[0]
    assert "dot.png" in lines[0] and "1x1" in lines[0]
    assert "bomb.png" in lines[0] and "too many pixels" in lines[0]
    assert len(list((out / "lq").iterdir())) == 3


@pytest.mark.parametrize("case", ["missing", "empty", "only_bad", "bad_size"])
def test_fatal_input_problems_give_one_line_and_exit_2(case, tmp_path, image_tools, caplog):
    target = tmp_path / case
    args = ["make-testset", "-o", str(tmp_path / "out"), "--size", "32"]
    if case != "missing":
        target.mkdir()
    if case == "only_bad":
        image_tools.bomb_png(target / "bomb.png")
    if case == "bad_size":
        image_tools.write_png(target / "ok.png", image_tools.textured(40, 40))
        args[-1] = "30"
    with caplog.at_level(logging.WARNING):
        code = main([*args, "--hr", str(target)])
    assert code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "Traceback" not in caplog.text
    expected = {
        "missing": "no such file or folder",
        "empty": "no images found",
        "only_bad": "no usable photos",
        "bad_size": "multiple of 4",
    }[case]
    assert expected in errors[0]
    assert not (tmp_path / "out" / "lq").exists() or case == "only_bad"


def test_jpeg_preset_is_the_test_pairs_compressed_again(photos, tmp_path):
    """``--preset jpeg``: the same ground truth as ``test``, and LR images that lost more to
    a second JPEG (quality 20-50) than the test pairs' did."""
    folders = {}
    for preset in ("test", "jpeg"):
        folders[preset] = tmp_path / preset
        argv = ["make-testset", "--hr", str(photos), "--size", "32", "--preset", preset]
        assert main([*argv, "-o", str(folders[preset])]) == 0
    names = sorted(p.name for p in (folders["test"] / "gt").iterdir())
    assert names == sorted(p.name for p in (folders["jpeg"] / "gt").iterdir())

    def pixels(preset: str, kind: str, name: str) -> np.ndarray:
        return np.asarray(PIL.Image.open(folders[preset] / kind / name), dtype=np.float64)

    for name in names:
        np.testing.assert_array_equal(pixels("test", "gt", name), pixels("jpeg", "gt", name))
        gt = pixels("test", "gt", name).reshape(8, 4, 8, 4, 3).mean(axis=(1, 3))
        test_error = np.abs(pixels("test", "lq", name) - gt).mean()
        jpeg_error = np.abs(pixels("jpeg", "lq", name) - gt).mean()
        assert jpeg_error > test_error
