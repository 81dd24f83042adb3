"""Fetch the training photos: natural photographs shipped in Debian wallpaper packages.

The checked-in list ``training_photos.json`` names each photo by package and
path inside the package, with its SHA-256 and byte size; photos were chosen by
eye (no drawings, renders or abstract graphics). Fetching downloads the
packages with ``apt-get download`` into a temporary folder (nothing is
installed), unpacks them with ``dpkg-deb -x``, checks every listed file and
copies the training photos to ``OUT/<name>`` and the held-out test photos
(``"split": "test"``, for ``gtasr make-testset``) to a separate folder,
``OUT-test`` by default, so that a training run reading ``OUT`` recursively
never sees them. A missing file or a
checksum mismatch stops with an error naming it: a changed package must not
silently change the training data.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gtasr.errors import GtasrError
from gtasr.external import run_program
from gtasr.fileio import atomic_path, file_sha256, refuse_existing

log = logging.getLogger(__name__)

MANIFEST_NAME = "training_photos.json"
DEBIAN = "a Debian-based system is needed"


@dataclass(frozen=True)
class Photo:
    """One listed photo: where it is in which package, what it must hash to."""

    name: str
    package: str
    path: str
    sha256: str
    size: int
    split: str
    """``"train"`` or ``"test"`` (held out)."""

    def __post_init__(self) -> None:
        if self.split not in ("train", "test"):
            raise GtasrError(f"photo list: {self.name} has split {self.split!r}, not train/test")


@dataclass(frozen=True)
class Manifest:
    packages: dict[str, str]
    """Package name -> the version the list was made from."""
    photos: list[Photo]


def load_manifest(path: str | os.PathLike[str] | None = None) -> Manifest:
    """Read the photo list (default: the one shipped with gtasr)."""
    if path is None:
        text = resources.files("gtasr.data").joinpath(MANIFEST_NAME).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    data = json.loads(text)
    fields = Photo.__dataclass_fields__
    photos = [Photo(**{key: entry[key] for key in fields}) for entry in data["photos"]]
    return Manifest(packages=dict(data["packages"]), photos=photos)


def apt_download(packages: Sequence[str], folder: Path) -> None:
    """``apt-get download`` the packages' .deb files into ``folder`` (no install)."""
    run_program(["apt-get", "download", *packages], cwd=folder, needs=DEBIAN)


def unpack_debs(debs: Path, root: Path) -> None:
    """Extract every ``PACKAGE_*.deb`` in ``debs`` to ``root/PACKAGE`` with ``dpkg-deb -x``."""
    for deb in sorted(debs.glob("*.deb")):
        package = deb.name.split("_", 1)[0]
        target = root / package
        target.mkdir(parents=True, exist_ok=True)
        run_program(["dpkg-deb", "-x", str(deb), str(target)], cwd=debs, needs=DEBIAN)


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
    :func:`default_test_folder`).
    Raises :class:`GtasrError` naming the first missing or mismatching file
    before anything is copied.
    """
    sources = []
    for photo in photos:
        source = root / photo.package / photo.path
        if not source.is_file():
            raise GtasrError(f"{photo.package}: {photo.path} is missing from the package")
        size = source.stat().st_size
        digest = file_sha256(source)
        if size != photo.size or digest != photo.sha256:
            raise GtasrError(
                f"{photo.package}: {photo.path} does not match the list "
                f"(sha256 {digest[:12]}..., {size} bytes; expected {photo.sha256[:12]}..., "
                f"{photo.size} bytes); the package changed, the photo list needs review"
            )
        sources.append(source)
    written = []
    for photo, source in zip(photos, sources, strict=True):
        target = photo_target(photo, out, test_out)
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        written.append(target)
    return written


def fetch_photos(
    out: str | os.PathLike[str],
    test_out: str | os.PathLike[str] | None = None,
    manifest: Manifest | None = None,
    download: Callable[[Sequence[str], Path], None] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Download, unpack, verify and copy the listed photos; returns the copies.

    Training photos go to ``out``, held-out test photos to ``test_out``
    (default ``<out>-test``). Photos already there are an error before anything is
    downloaded, unless ``overwrite``.
    ``download(packages, folder)`` puts the packages' .deb files in ``folder``
    (default :func:`apt_download`).
    """
    manifest = manifest or load_manifest()
    download = download or apt_download
    test_folder = Path(test_out) if test_out is not None else None
    refuse_existing([photo_target(p, Path(out), test_folder) for p in manifest.photos], overwrite)
    packages = sorted({photo.package for photo in manifest.photos})
    with tempfile.TemporaryDirectory(prefix="gtasr-photos-") as temp:
        work = Path(temp)
        debs, root = work / "debs", work / "root"
        debs.mkdir()
        # apt drops privileges to its own user when it can; let it write here.
        work.chmod(0o755)
        debs.chmod(0o777)
        log.info("downloading %s", ", ".join(packages))
        download(packages, debs)
        unpack_debs(debs, root)
        missing = [p for p in packages if not (root / p).is_dir()]
        if missing:
            raise GtasrError(f"packages not downloaded: {', '.join(missing)}")
        return verify_and_copy(manifest.photos, root, Path(out), test_folder)
