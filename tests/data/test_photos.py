"""Training-photo fetching on fake packages built locally (no network)."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gtasr.cli import main
from gtasr.data import photos as photos_module
from gtasr.data.photos import Manifest, Photo, fetch_photos, load_manifest, verify_and_copy
from gtasr.errors import GtasrError

CONTENT = {
    ("pkg-one", "usr/share/backgrounds/lake.jpg"): b"lake photo bytes",
    ("pkg-one", "usr/share/backgrounds/logo.png"): b"a graphic, not listed",
    ("pkg-two", "usr/share/wallpapers/Hill/contents/images/2560x1600.jpg"): b"hill photo",
}


def _photo(package: str, path: str, split: str = "train", name: str | None = None) -> Photo:
    data = CONTENT[(package, path)]
    return Photo(
        name=name or Path(path).name,
        package=package,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        split=split,
    )


MANIFEST = Manifest(
    packages={"pkg-one": "1.0", "pkg-two": "2.0"},
    photos=[
        _photo("pkg-one", "usr/share/backgrounds/lake.jpg"),
        _photo(
            "pkg-two", "usr/share/wallpapers/Hill/contents/images/2560x1600.jpg", "test", "Hill.jpg"
        ),
    ],
)


def _tree(root: Path) -> Path:
    """The unpacked packages: root/PACKAGE/PATH."""
    for (package, path), data in CONTENT.items():
        target = root / package / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def test_verify_and_copy_keeps_test_photos_out_of_the_training_folder(tmp_path):
    root = _tree(tmp_path / "root")
    written = verify_and_copy(MANIFEST.photos, root, tmp_path / "photos")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "photos-test/Hill.jpg",
        "photos/lake.jpg",
    ]
    assert (tmp_path / "photos-test" / "Hill.jpg").read_bytes() == b"hill photo"
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["lake.jpg"]
    elsewhere = verify_and_copy(MANIFEST.photos, root, tmp_path / "a", tmp_path / "held")
    assert {p.parent.name for p in elsewhere} == {"a", "held"}


def test_checksum_mismatch_fails_loudly_before_copying(tmp_path):
    root = _tree(tmp_path / "root")
    (root / "pkg-two" / MANIFEST.photos[1].path).write_bytes(b"hill photo, re-encoded")
    with pytest.raises(GtasrError, match="does not match the list") as error:
        verify_and_copy(MANIFEST.photos, root, tmp_path / "out")
    assert "2560x1600.jpg" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_missing_file_fails(tmp_path):
    root = _tree(tmp_path / "root")
    (root / "pkg-one" / MANIFEST.photos[0].path).unlink()
    with pytest.raises(GtasrError, match=r"lake\.jpg is missing"):
        verify_and_copy(MANIFEST.photos, root, tmp_path / "out")


def _build_debs(source: Path, folder: Path) -> None:
    """Real .deb files for the fake packages (what ``apt-get download`` would fetch)."""
    for package in ("pkg-one", "pkg-two"):
        tree = source / package
        (tree / "DEBIAN").mkdir(parents=True, exist_ok=True)
        (tree / "DEBIAN" / "control").write_text(
            f"Package: {package}\nVersion: 1.0\nArchitecture: all\n"
            "Maintainer: Test <test@example.org>\nDescription: test wallpapers\n"
        )
        subprocess.run(
            [
                "dpkg-deb",
                "--root-owner-group",
                "--build",
                str(tree),
                str(folder / f"{package}_1.0_all.deb"),
            ],
            check=True,
            capture_output=True,
        )


@pytest.fixture
def fake_download(tmp_path):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    source = _tree(tmp_path / "src")
    requested = []

    def download(packages, folder):
        requested.extend(packages)
        _build_debs(source, folder)

    download.requested = requested
    return download


def test_fetch_unpacks_real_debs_and_copies(tmp_path, fake_download):
    written = fetch_photos(tmp_path / "photos", manifest=MANIFEST, download=fake_download)
    assert fake_download.requested == ["pkg-one", "pkg-two"]
    assert {p.name for p in written} == {"lake.jpg", "Hill.jpg"}
    assert (tmp_path / "photos" / "lake.jpg").read_bytes() == b"lake photo bytes"
    assert (tmp_path / "photos-test" / "Hill.jpg").read_bytes() == b"hill photo"


def test_existing_photos_are_an_error_before_downloading(tmp_path, fake_download):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "lake.jpg").write_bytes(b"keep")
    with pytest.raises(GtasrError, match=r"lake\.jpg exists; use --overwrite"):
        fetch_photos(tmp_path / "photos", manifest=MANIFEST, download=fake_download)
    assert fake_download.requested == []
    fetch_photos(tmp_path / "photos", manifest=MANIFEST, download=fake_download, overwrite=True)
    assert (tmp_path / "photos" / "lake.jpg").read_bytes() == b"lake photo bytes"


def test_cli_reports_a_mismatch_on_one_line(tmp_path, fake_download, monkeypatch, caplog):
    bad = Manifest(
        MANIFEST.packages,
        [*MANIFEST.photos[:1], Photo(**{**MANIFEST.photos[1].__dict__, "sha256": "0" * 64})],
    )
    monkeypatch.setattr(photos_module, "apt_download", fake_download)
    monkeypatch.setattr(photos_module, "load_manifest", lambda path=None: bad)
    with caplog.at_level(logging.ERROR):
        code = main(["fetch-photos", "-o", str(tmp_path / "photos")])
    assert code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "does not match the list" in errors[0]
    assert not (tmp_path / "photos").exists()


def test_unknown_split_is_rejected():
    with pytest.raises(GtasrError, match="not train/test"):
        Photo("a.jpg", "pkg", "a.jpg", "0" * 64, 1, "validation")


def test_shipped_list_is_consistent():
    manifest = load_manifest()
    assert len(manifest.photos) == 48
    assert sum(p.split == "test" for p in manifest.photos) == 6
    assert {p.split for p in manifest.photos} == {"train", "test"}
    assert len({p.name for p in manifest.photos}) == len(manifest.photos)
    assert len({p.sha256 for p in manifest.photos}) == len(manifest.photos)  # no photo twice
    assert {p.package for p in manifest.photos} == set(manifest.packages)
    for photo in manifest.photos:
        assert re.fullmatch("[0-9a-f]{64}", photo.sha256), photo.name
        assert photo.size > 50_000
        assert Path(photo.name).suffix in (".jpg", ".png")
