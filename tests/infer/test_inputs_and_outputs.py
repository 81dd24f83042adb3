"""An output never replaces an input, and outputs are never read back as inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from gtasr.cli import main
from gtasr.imageio import read_image


def _photos(folder: Path, *names: str) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        PIL.Image.fromarray(rng.integers(0, 256, (6, 8, 3), np.uint8)).save(folder / name)
    return {name: (folder / name).read_bytes() for name in names}


def _upscale(*argv: object) -> int:
    return main(["upscale", "--method", "bicubic", *map(str, argv)])


def test_output_folder_equal_to_input_never_replaces_originals(tmp_path: Path) -> None:
    originals = _photos(tmp_path, "a.png", "b.png")
    for _ in range(2):
        assert _upscale(tmp_path, "-o", tmp_path, "--overwrite") == 1
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == originals
    assert _upscale(tmp_path, "-o", tmp_path) == 1  # without --overwrite: the same refusal


def test_suffix_in_the_input_folder_is_not_upscaled_again(tmp_path: Path) -> None:
    originals = _photos(tmp_path, "a.png", "b.png")
    assert _upscale(tmp_path, "-o", tmp_path, "--suffix", "_x4") == 0
    first = (tmp_path / "a_x4.png").read_bytes()
    assert _upscale(tmp_path, "-o", tmp_path, "--suffix", "_x4", "--overwrite") == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.png", "a_x4.png", "b.png", "b_x4.png"]
    assert (tmp_path / "a_x4.png").read_bytes() == first
    assert read_image(tmp_path / "a_x4.png").width == 32
    assert all((tmp_path / n).read_bytes() == data for n, data in originals.items())


def test_another_ext_never_replaces_an_input_of_that_name(tmp_path: Path) -> None:
    _photos(tmp_path, "a.png", "a.jpg", "b.png")
    kept = (tmp_path / "a.jpg").read_bytes()
    code = _upscale(
        tmp_path / "a.png",
        tmp_path / "a.jpg",
        tmp_path / "b.png",
        "-o",
        tmp_path,
        "--ext",
        "jpg",
        "--overwrite",
    )
    assert code == 1
    assert (tmp_path / "a.jpg").read_bytes() == kept
    assert read_image(tmp_path / "b.jpg").width == 32


@pytest.mark.parametrize("pattern", [False, True])
def test_output_folder_inside_the_input_is_never_read(tmp_path: Path, pattern: bool) -> None:
    _photos(tmp_path / "in", "a.png", "sub/b.png")
    source = str(tmp_path / "in" / "**" / "*.png") if pattern else tmp_path / "in"
    out = tmp_path / "in" / "out"
    for _ in range(2):
        assert _upscale(source, "-o", out, "--recursive", "--overwrite") == 0
    assert sorted(p.name for p in out.rglob("*")) == ["a.png", "b.png"]
    assert read_image(out / "a.png").width == 32  # x4, not x16


def test_links_to_the_folder_itself_end(tmp_path: Path) -> None:
    _photos(tmp_path / "in", "a.png")
    os.symlink(".", tmp_path / "in" / "l1")
    os.symlink(".", tmp_path / "in" / "l2")
    pattern = str(tmp_path / "in" / "**" / "*.png")
    assert _upscale(pattern, "-o", tmp_path / "out", "--recursive") == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]


def test_make_testset_output_inside_hr_is_not_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    (tmp_path / "hr").mkdir()
    for name in ("p0.png", "p1.png"):
        pixels = rng.integers(0, 256, (64, 64, 3), np.uint8)
        PIL.Image.fromarray(pixels).save(tmp_path / "hr" / name)
    out = tmp_path / "hr" / "pairs"
    for _ in range(2):
        argv = ["make-testset", "--hr", str(tmp_path / "hr"), "-o", str(out), "--size", "32"]
        assert main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in (out / "gt").iterdir()) == ["p0.png", "p1.png"]


def test_an_unreadable_subfolder_is_a_named_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from gtasr import listing

    _photos(tmp_path / "in", "a.png", "locked/b.png")
    real = os.scandir

    def scandir(path):  # root reads every folder: refuse this one as a user's would be
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(listing.os, "scandir", scandir)
    assert _upscale(tmp_path / "in", "-o", tmp_path / "out", "--recursive") == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("locked: cannot read this folder (Permission denied)" in e for e in errors)
