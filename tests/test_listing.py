"""Listing inputs: files, folders, globs; link loops end, unreadable folders are reported."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from gtasr import listing
from gtasr.errors import InputError
from gtasr.listing import list_images


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def test_files_folders_globs(tmp_path: Path) -> None:
    _touch(tmp_path, "b.png", "a.jpg", ".hidden.png", "notes.txt", "sub/c.webp")
    assert list_images([tmp_path]) == [tmp_path / "a.jpg", tmp_path / "b.png"]
    assert list_images([tmp_path], recursive=True) == [
        tmp_path / "a.jpg",
        tmp_path / "b.png",
        tmp_path / "sub" / "c.webp",
    ]
    assert list_images([str(tmp_path / "*.png"), tmp_path / "b.png"]) == [tmp_path / "b.png"]
    assert list_images([tmp_path / "notes.txt"]) == [tmp_path / "notes.txt"]
    assert list_images([str(tmp_path / "**" / "*.webp")], recursive=True) == [
        tmp_path / "sub" / "c.webp"
    ]
    with pytest.raises(InputError, match="no such file"):
        list_images([tmp_path / "nope.png"])
    with pytest.raises(InputError, match="no files match"):
        list_images([str(tmp_path / "*.gif")])


def test_recursive_glob_matches_like_the_standard_glob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _touch(tmp_path, "a.png", "x/b.png", "x/y/c.png", "x/.h/d.png", "z/e.jpg")
    monkeypatch.chdir(tmp_path)
    for pattern in ("**/*.png", "x/**/*.png", "*/b.png", "**", "x/**"):
        import glob

        expected = [Path(p) for p in sorted(glob.glob(pattern, recursive=True))]
        expected_images = [p for p in expected if p.is_file() and listing.is_image_name(p)]
        got = list_images([pattern], recursive=True)
        assert set(got) >= set(expected_images), pattern
        assert all(listing.is_image_name(p) for p in got)


def test_links_back_up_the_tree_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _touch(tmp_path, "in/a.png", "in/sub/b.png")
    os.symlink(".", tmp_path / "in" / "loop1")
    os.symlink("..", tmp_path / "in" / "sub" / "up")
    caplog.set_level(logging.INFO)
    found = list_images([str(tmp_path / "in" / "**" / "*.png")], recursive=True)
    assert sorted(p.resolve() for p in found) == [
        (tmp_path / "in" / "a.png").resolve(),
        (tmp_path / "in" / "sub" / "b.png").resolve(),
    ]
    assert len(list_images([tmp_path / "in"], recursive=True)) == 2


def test_unreadable_subfolder_is_reported_and_the_rest_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _touch(tmp_path, "a.png", "locked/b.png")
    real = os.scandir

    def scandir(path: os.PathLike[str] | str):  # root reads any folder: refuse this one
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(listing.os, "scandir", scandir)
    problems: list[InputError] = []
    found = list_images([tmp_path], recursive=True, on_problem=problems.append)
    assert found == [tmp_path / "a.png"]
    assert [p.path for p in problems] == [str(tmp_path / "locked")]
    assert "Permission denied" in str(problems[0])
    with pytest.raises(InputError, match="locked: cannot read this folder"):
        list_images([tmp_path], recursive=True)


def test_a_link_beside_its_target_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _touch(tmp_path, "a.png")
    os.symlink("a.png", tmp_path / "link.png")
    assert list_images([tmp_path]) == [tmp_path / "a.png"]
    assert any("link.png: the same file as" in r.getMessage() for r in caplog.records)


def test_output_folder_inside_the_input_is_not_listed(tmp_path: Path) -> None:
    _touch(tmp_path, "a.png", "out/a.png", "other/c.png")
    found = list_images([tmp_path], recursive=True, skip_under=tmp_path / "out")
    assert found == [tmp_path / "a.png", tmp_path / "other" / "c.png"]
    pattern = str(tmp_path / "**" / "*.png")
    assert tmp_path / "out" / "a.png" not in list_images(
        [pattern], recursive=True, skip_under=tmp_path / "out"
    )
    # the output folder itself named as the input: listed (the upscaler refuses to overwrite)
    assert list_images([tmp_path / "out"], skip_under=tmp_path / "out") == [
        tmp_path / "out" / "a.png"
    ]


def test_files_are_named_relative_to_their_input_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shots" / "trip").mkdir(parents=True)
    deep = tmp_path / "shots" / "trip" / "a.png"
    deep.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    roots = {item: listing.input_root(item) for item in ("shots", "shots/trip/a.png", "sh*/**")}
    assert roots == {
        "shots": Path("shots"),
        "shots/trip/a.png": Path("shots/trip"),
        "sh*/**": Path(),
    }
    found = Path("shots/trip/a.png")
    names = [listing.relative_name(found, root) for root in roots.values()]
    assert names == ["trip/a.png", "a.png", "shots/trip/a.png"]
    assert listing.relative_name(found, Path("elsewhere")) == "a.png"
