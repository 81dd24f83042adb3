"""Training-photo fetching on fake packages built locally (no network)."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from gtasr.cli import main
from gtasr.data import photos as photos_module
from gtasr.data.debian_archive import apt_download, write_apt_config
from gtasr.data.eet import MAGIC, read_entry
from gtasr.data.photos import (
    Manifest,
    Package,
    Photo,
    fetch_photos,
    load_manifest,
    verify_and_copy,
)
from gtasr.errors import GtasrError

JPEG_IN_EET = b"\xff\xd8 a photo stored in an Edje file \xff\xd9"


def eet_file(
    entries: dict[str, tuple[bytes, int]], strings: tuple[bytes, ...] = (b"dict",)
) -> bytes:
    """An Eet file laid out as Enlightenment's ``eet_flush2`` writes it.

    ``entries`` maps each key to its stored bytes and flag word; ``strings`` fill the
    dictionary (each entry: hash, offset, length, previous, next), which a reader of
    plain entries skips.
    """
    names = [key.encode() + b"\0" for key in entries]
    words = [s + b"\0" for s in strings]
    names_at = 12 + 24 * len(entries) + 20 * len(words)
    strings_at = names_at + sum(map(len, names))
    data_at = strings_at + sum(map(len, words))
    directory, name_offset, data_offset = b"", names_at, data_at
    for name, (data, flags) in zip(names, entries.values(), strict=True):
        directory += struct.pack(
            ">6I", data_offset, len(data), len(data), name_offset, len(name), flags
        )
        name_offset += len(name)
        data_offset += len(data)
    dictionary, offset = b"", strings_at
    for index, word in enumerate(words):
        dictionary += struct.pack(">5i", index, offset, len(word), -1, -1)
        offset += len(word)
    header = struct.pack(">3I", MAGIC, len(entries), len(words))
    blobs = b"".join(data for data, _ in entries.values())
    return header + directory + dictionary + b"".join(names) + b"".join(words) + blobs


EDJ = eet_file({"edje/file": (b"theme description", 0), "edje/images/0": (JPEG_IN_EET, 0)})

CONTENT = {
    ("pkg-one", "usr/share/backgrounds/lake.jpg"): b"lake photo bytes",
    ("pkg-one", "usr/share/backgrounds/logo.png"): b"a graphic, not listed",
    ("pkg-two", "usr/share/wallpapers/Hill/contents/images/2560x1600.jpg"): b"hill photo",
    ("pkg-two", "usr/share/e/backgrounds/Bamboo.edj"): EDJ,
}


def _photo(
    package: str,
    path: str,
    split: str = "train",
    name: str | None = None,
    member: str | None = None,
) -> Photo:
    data = CONTENT[(package, path)] if member is None else JPEG_IN_EET
    return Photo(
        name=name or Path(path).name,
        package=package,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        split=split,
        licence="CC0-1.0",
        member=member,
    )


MANIFEST = Manifest(
    packages={"pkg-one": Package("bookworm", "1.0"), "pkg-two": Package("trixie", "2.0")},
    photos=[
        _photo("pkg-one", "usr/share/backgrounds/lake.jpg"),
        _photo(
            "pkg-two", "usr/share/wallpapers/Hill/contents/images/2560x1600.jpg", "test", "Hill.jpg"
        ),
        _photo(
            "pkg-two",
            "usr/share/e/backgrounds/Bamboo.edj",
            name="Bamboo.jpg",
            member="edje/images/0",
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
        "photos/Bamboo.jpg",
        "photos/lake.jpg",
    ]
    assert (tmp_path / "photos-test" / "Hill.jpg").read_bytes() == b"hill photo"
    assert (tmp_path / "photos" / "Bamboo.jpg").read_bytes() == JPEG_IN_EET
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["Bamboo.jpg", "lake.jpg"]
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

    def download(packages, folder, apt_root=None):
        requested.extend(f"{name}/{suite}" for name, suite in packages.items())
        _build_debs(source, folder)

    download.requested = requested
    return download


def test_fetch_unpacks_real_debs_and_copies(tmp_path, fake_download):
    written = fetch_photos(tmp_path / "photos", manifest=MANIFEST, download=fake_download)
    assert fake_download.requested == ["pkg-one/bookworm", "pkg-two/trixie"]
    assert {p.name for p in written} == {"lake.jpg", "Hill.jpg", "Bamboo.jpg"}
    assert (tmp_path / "photos" / "Bamboo.jpg").read_bytes() == JPEG_IN_EET
    assert (tmp_path / "photos" / "lake.jpg").read_bytes() == b"lake photo bytes"
    assert (tmp_path / "photos-test" / "Hill.jpg").read_bytes() == b"hill photo"


def test_packages_keeps_only_their_photos_and_downloads_only_them(
    tmp_path, fake_download, monkeypatch, caplog
):
    monkeypatch.setattr(photos_module, "apt_download", fake_download)
    monkeypatch.setattr(photos_module, "load_manifest", lambda path=None: MANIFEST)
    assert main(["fetch-photos", "-o", str(tmp_path / "photos"), "--packages", "pkg-one"]) == 0
    assert fake_download.requested == ["pkg-one/bookworm"]
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["lake.jpg"]
    assert not (tmp_path / "photos-test").exists()  # pkg-two's held-out photo stays out
    with caplog.at_level(logging.ERROR):
        code = main(["fetch-photos", "-o", str(tmp_path / "other"), "--packages", "pkg-one,pkg-9"])
    assert code == 2 and "unknown photo package pkg-9 (known: pkg-one, pkg-two)" in caplog.text
    assert not (tmp_path / "other").exists()
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        code = main(["fetch-photos", "-o", str(tmp_path / "none"), "--packages", " , "])
    assert code == 2 and "no photo package named (known: pkg-one, pkg-two)" in caplog.text
    assert not (tmp_path / "none").exists() and fake_download.requested == ["pkg-one/bookworm"]


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


def test_a_changed_photo_in_a_container_is_a_mismatch(tmp_path):
    root = _tree(tmp_path / "root")
    edj = root / "pkg-two" / MANIFEST.photos[2].path
    edj.write_bytes(eet_file({"edje/images/0": (JPEG_IN_EET + b"re-encoded", 0)}))
    with pytest.raises(GtasrError, match=r"Bamboo\.edj \(edje/images/0\) does not match the list"):
        verify_and_copy(MANIFEST.photos, root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_split_is_rejected():
    with pytest.raises(GtasrError, match="not train/test"):
        Photo("a.jpg", "pkg", "a.jpg", "0" * 64, 1, "validation", "CC0-1.0")


def test_a_photo_needs_a_licence_and_a_listed_package():
    with pytest.raises(GtasrError, match=r"a\.jpg has no licence"):
        Photo("a.jpg", "pkg", "a.jpg", "0" * 64, 1, "train", "")
    with pytest.raises(GtasrError, match=r"a\.jpg comes from pkg, which is not among the packages"):
        Manifest({}, [Photo("a.jpg", "pkg", "a.jpg", "0" * 64, 1, "train", "CC0-1.0")])


def test_a_malformed_photo_list_is_one_error(tmp_path):
    listing = tmp_path / "photos.json"
    listing.write_text('{"packages": {"pkg": "1.0"}, "photos": []}')  # the old format
    with pytest.raises(GtasrError, match=r"photos\.json: not a photo list"):
        load_manifest(listing)


# The held-out photos of every bundled model so far: changing them changes every reported number.
TEST_PHOTOS = {
    "friends_by_Aitzol_Berasategi.jpg",
    "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "flowers.png",
    "LadyBird.jpg",
    "EveningGlow.jpg",
    "Path.jpg",
}
# Licences that allow training on the photos and redistributing the trained weights.
OPEN_LICENCES = {
    "CC0-1.0",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "GPL-2.0-or-later",
    "LGPL-3.0-only",
    "BSD-2-Clause",
}


def test_shipped_list_is_consistent():
    manifest = load_manifest()
    photos = manifest.photos
    assert {p.name for p in photos if p.split == "test"} == TEST_PHOTOS
    assert len({p.name for p in photos}) == len(photos)
    assert len({p.sha256 for p in photos}) == len(photos)  # no photo twice
    assert {p.package for p in photos} == set(manifest.packages)
    for name, package in manifest.packages.items():
        assert package.suite in ("bookworm", "trixie", "bullseye"), name
        assert re.fullmatch(r"[0-9:]*[0-9][0-9A-Za-z.+~-]*", package.version), name
    for photo in photos:
        assert re.fullmatch("[0-9a-f]{64}", photo.sha256), photo.name
        assert photo.size > 4_000, photo.name
        assert photo.licence in OPEN_LICENCES, photo.name
        assert Path(photo.name).suffix in (".jpg", ".png", ".webp"), photo.name
        # only Enlightenment's Edje files are containers, and their photos are extracted
        assert (photo.member is not None) == photo.path.endswith(".edj"), photo.name


def test_private_apt_config_lives_in_its_folder(tmp_path):
    config = write_apt_config(tmp_path / "apt", ["bookworm", "trixie"])
    sources = (tmp_path / "apt" / "sources.list").read_text().splitlines()
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert sources == [
        f"deb [signed-by={keyring}] http://deb.debian.org/debian bookworm main",
        f"deb [signed-by={keyring}] http://deb.debian.org/debian trixie main",
    ]
    settings = dict(re.findall(r'^(\S+) "(.*)";$', config.read_text(), re.M))
    paths = {key: value for key, value in settings.items() if key.startswith("Dir::")}
    # the system's sources, apt.conf.d fragments, preferences, lists and cache are all replaced
    assert {
        "Dir::Etc::Main",
        "Dir::Etc::Parts",
        "Dir::Etc::SourceList",
        "Dir::Etc::SourceParts",
        "Dir::Etc::PreferencesParts",
        "Dir::State::Lists",
        "Dir::State::Status",
        "Dir::Cache",
    } <= set(paths)
    for key, value in paths.items():
        assert Path(value).is_relative_to(tmp_path / "apt"), key
    assert (tmp_path / "apt" / "lists" / "partial").is_dir()
    assert settings["APT::Update::Error-Mode"] == "any"  # a failed index fetch is an error


def test_download_without_the_archive_keyring_names_the_packages(tmp_path):
    packages = {"budgie-backgrounds": "trixie"}
    with pytest.raises(GtasrError, match=r"keyring\.gpg not found.*budgie-backgrounds"):
        apt_download(packages, tmp_path, tmp_path / "apt", keyring=tmp_path / "keyring.gpg")


def test_eet_entry_is_read_back(tmp_path):
    edj = tmp_path / "Bamboo.edj"
    edj.write_bytes(EDJ)
    assert read_entry(edj, "edje/images/0") == JPEG_IN_EET
    assert read_entry(edj, "edje/file") == b"theme description"
    with pytest.raises(GtasrError, match=r"Bamboo\.edj: no Eet entry edje/images/1"):
        read_entry(edj, "edje/images/1")


@pytest.mark.parametrize(
    ("flags", "kind"), [(0x1, "compressed"), (0x2, "encrypted"), (0x4, "an alias")]
)
def test_eet_refuses_entries_it_cannot_read_plainly(tmp_path, flags, kind):
    edj = tmp_path / "packed.edj"
    edj.write_bytes(eet_file({"edje/images/0": (b"zlib data", flags)}))
    with pytest.raises(GtasrError, match=f"packed.edj: Eet entry edje/images/0 is {kind}"):
        read_entry(edj, "edje/images/0")


def test_eet_refuses_damaged_files(tmp_path):
    cases = {
        "short.edj": EDJ[:8],
        "png.edj": b"\x89PNG\r\n\x1a\n" + bytes(16),
        "cut.edj": EDJ[: len(EDJ) - 5],  # the last entry's data runs past the end
        "nodir.edj": EDJ[:40],  # the directory runs past the end
    }
    problems = {
        "short.edj": "too short for an Eet file",
        "png.edj": "not an Eet file",
        "cut.edj": "entry edje/images/0 runs past the end",
        "nodir.edj": "directory runs past the end",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(GtasrError, match=f"{name}: .*{re.escape(problems[name])}"):
            read_entry(tmp_path / name, "edje/images/0")
