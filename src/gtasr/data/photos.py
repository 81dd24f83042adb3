"""Fetch the training photos: natural photographs shipped in Debian wallpaper packages.

The checked-in list ``training_photos.json`` names each package with its Debian suite and
version, and each photo by package and path (and container ``member``) with its SHA-256,
size, licence and credit (docs/data-and-licences.md). The held-out test photos
(``"split": "test"``) go to a separate folder, ``OUT-test`` by default, so that a
training run reading ``OUT`` recursively never sees them. A missing file or a checksum
mismatch stops with an error naming it: a changed package must not silently change the
training data.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gtasr.data.debian_archive import apt_download, unpack_debs
from gtasr.data.eet import read_entry
from gtasr.errors import GtasrError
from gtasr.fileio import atomic_path, atomic_write_bytes, file_sha256, refuse_existing

log = logging.getLogger(__name__)

MANIFEST_NAME = "training_photos.json"

Download = Callable[[Mapping[str, str], Path], None]
"""``download(packages, folder)``: put the .deb of each package (name -> suite) in ``folder``."""


@dataclass(frozen=True)
class Package:
    """Where a package is fetched from and which version the list was made from."""

    suite: str
    """Debian suite (``"bookworm"``, ``"trixie"``, ...)."""
    version: str


@dataclass(frozen=True)
class Photo:
    """One listed photo: where it is in which package, what it must hash to, its licence."""

    name: str
    package: str
    path: str
    sha256: str
    size: int
    split: str
    """``"train"`` or ``"test"`` (held out)."""
    licence: str
    """SPDX identifier where there is one (``"CC-BY-SA-3.0"``), as the package states it."""
    credit: str | None = None
    """Author or source, where the package names one."""
    member: str | None = None
    """The entry of the Eet container at ``path`` that holds the photo, if any."""

    def __post_init__(self) -> None:
        if self.split not in ("train", "test"):
            raise GtasrError(f"photo list: {self.name} has split {self.split!r}, not train/test")
        if not self.licence:
            raise GtasrError(f"photo list: {self.name} has no licence")


@dataclass(frozen=True)
class Manifest:
    packages: dict[str, Package]
    """Package name -> its suite and the version the list was made from."""
    photos: list[Photo]

    def __post_init__(self) -> None:
        for photo in self.photos:
            if photo.package not in self.packages:
                raise GtasrError(
                    f"photo list: {photo.name} comes from {photo.package}, "
                    "which is not among the packages"
                )


def load_manifest(path: str | os.PathLike[str] | None = None) -> Manifest:
    """Read the photo list (default: the one shipped with gtasr)."""
    if path is None:
        text = resources.files("gtasr.data").joinpath(MANIFEST_NAME).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    try:
        data = json.loads(text)
        packages = {name: Package(**entry) for name, entry in data["packages"].items()}
        photos = [Photo(**entry) for entry in data["photos"]]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        where = MANIFEST_NAME if path is None else os.fspath(path)
        raise GtasrError(f"{where}: not a photo list ({error})") from error
    return Manifest(packages=packages, photos=photos)


def default_test_folder(out: str | os.PathLike[str]) -> Path:
    """Where the held-out photos go unless told: beside ``out``, named ``<out>-test``."""
    path = Path(out)
    return path.with_name(f"{path.name}-test")


def photo_target(photo: Photo, out: Path, test_out: Path | None = None) -> Path:
    """Where a photo is copied: ``out/NAME``, or the held-out folder for test photos."""
    folder = out if photo.split == "train" else (test_out or default_test_folder(out))
    return folder / photo.name


def verify_and_copy(
    photos: Sequence[Photo], root: Path, out: Path, test_out: Path | None = None
) -> list[Path]:
    """Check each photo under ``root/PACKAGE/PATH``; copy it to ``out/NAME`` or ``test_out/NAME``.

    Training photos go to ``out``, held-out ones to ``test_out`` (default
    :func:`default_test_folder`). A photo with a ``member`` is extracted from the
    container file at PATH.
    Raises :class:`GtasrError` naming the first missing or mismatching file
    before anything is copied.
    """
    sources = []
    for photo in photos:
        source = root / photo.package / photo.path
        where = f"{photo.path} ({photo.member})" if photo.member else photo.path
        if not source.is_file():
            raise GtasrError(f"{photo.package}: {photo.path} is missing from the package")
        if photo.member:
            data = read_entry(source, photo.member)
            size, digest = len(data), hashlib.sha256(data).hexdigest()
        else:
            size, digest = source.stat().st_size, file_sha256(source)
        if size != photo.size or digest != photo.sha256:
            raise GtasrError(
                f"{photo.package}: {where} does not match the list "
                f"(sha256 {digest[:12]}..., {size} bytes; expected {photo.sha256[:12]}..., "
                f"{photo.size} bytes); the package changed, the photo list needs review"
            )
        sources.append(source)
    written = []
    for photo, source in zip(photos, sources, strict=True):
        target = photo_target(photo, out, test_out)
        if photo.member:
            atomic_write_bytes(target, read_entry(source, photo.member))
        else:
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
        written.append(target)
    return written


def only_packages(manifest: Manifest, names: Sequence[str]) -> Manifest:
    """The part of the list that comes from the named packages (e.g. the five that the
    bundled model v2 was trained on); an unknown name is an error that lists the known."""
    known = ", ".join(manifest.packages)
    if not names:
        raise GtasrError(f"no photo package named (known: {known})")
    unknown = [name for name in names if name not in manifest.packages]
    if unknown:
        raise GtasrError(f"unknown photo package {', '.join(unknown)} (known: {known})")
    return Manifest(
        packages={name: manifest.packages[name] for name in names},
        photos=[photo for photo in manifest.photos if photo.package in names],
    )


def fetch_photos(
    out: str | os.PathLike[str],
    test_out: str | os.PathLike[str] | None = None,
    manifest: Manifest | None = None,
    download: Download | None = None,
    overwrite: bool = False,
    packages: Sequence[str] | None = None,
) -> list[Path]:
    """Download, unpack, verify and copy the listed photos; returns the copies.

    Training photos go to ``out``, held-out test photos to ``test_out``
    (default ``<out>-test``). Photos already there are an error before anything is
    downloaded, unless ``overwrite``. ``packages`` keeps only those packages' photos
    (default: every package of the list).
    ``download(packages, folder)`` puts the .deb of each package (name -> suite) in
    ``folder`` (default :func:`~gtasr.data.debian_archive.apt_download` with a private
    APT setup in the temporary folder).
    """
    manifest = manifest or load_manifest()
    if packages is not None:
        manifest = only_packages(manifest, packages)
    test_folder = Path(test_out) if test_out is not None else None
    refuse_existing([photo_target(p, Path(out), test_folder) for p in manifest.photos], overwrite)
    names = sorted({photo.package for photo in manifest.photos})
    packages = {name: manifest.packages[name].suite for name in names}
    with tempfile.TemporaryDirectory(prefix="gtasr-photos-") as temp:
        work = Path(temp)
        debs, root = work / "debs", work / "root"
        debs.mkdir()
        # apt drops privileges to its own user when it can; let it write here.
        work.chmod(0o755)
        debs.chmod(0o777)
        log.info("downloading %s", ", ".join(f"{name}/{suite}" for name, suite in packages.items()))
        (download or functools.partial(apt_download, apt_root=work / "apt"))(packages, debs)
        unpack_debs(debs, root)
        missing = [name for name in names if not (root / name).is_dir()]
        if missing:
            raise GtasrError(f"packages not downloaded: {', '.join(missing)}")
        return verify_and_copy(manifest.photos, root, Path(out), test_folder)
