"""Models by name (gtasr.hub) against a stand-in of the Hugging Face hub on 127.0.0.1.

The stand-in answers HEAD and GET of ``/{owner}/{repo}/resolve/{revision}/{file}`` with the
headers huggingface_hub reads (X-Repo-Commit, ETag / X-Linked-Etag holding the file's
SHA-256 as for a Git LFS file, X-Linked-Size, Content-Length) and serves an authors'-format
checkpoint with random weights under the catalogue's repositories. huggingface_hub reads
HF_HOME, HF_ENDPOINT and HF_HUB_OFFLINE once, when it is imported: the in-process tests set
the variables and its module constants both; the command-line test at the end starts
``gtasr`` with the variables alone.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import logging
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

import gtasr
from gtasr.cli import main
from gtasr.errors import GtasrError
from gtasr.hub import CATALOGUE, bundled_model_path, catalogue_rows, resolve_model
from gtasr.infer.upscaler import Upscaler
from gtasr.model_commands import count_parameters
from gtasr.nets import build_network, state_shapes
from gtasr.nets.release_layout import release_state_dict

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PAPER = CATALOGUE["gtasr-paper"].source
CTMSR = CATALOGUE["ctmsr"].source
REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


class StandInHub(http.server.ThreadingHTTPServer):
    """Hub files by URL path, and how they are served: ``ok``, ``corrupt`` (other bytes
    than the stated SHA-256, same length) or ``cut`` (the connection closes mid-body)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.mode = "ok"
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, repo: str, filename: str, data: bytes) -> None:
        """Serve ``data`` as ``filename`` of ``repo`` at ``main`` and at :data:`COMMIT`."""
        for revision in ("main", COMMIT):
            self.files[f"/{repo}/resolve/{revision}/{filename}"] = data

    def __enter__(self) -> StandInHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: StandInHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read ``server.requests`` instead."""

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        data = self.server.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        sha256 = hashlib.sha256(data).hexdigest()
        start = int(self.headers.get("Range", "bytes=0-").removeprefix("bytes=").split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{sha256}"')
        self.send_header("X-Linked-Etag", f'"{sha256}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        if self.server.mode == "corrupt":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        if self.server.mode == "cut":
            self.wfile.write(data[start : start + (len(data) - start) // 2])
            self.close_connection = True
            return
        self.wfile.write(data[start:])


@pytest.fixture(scope="module")
def authors_file() -> bytes:
    """An authors'-format checkpoint (``params_ema``) of the tiny network, random weights."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        backbone = build_network("tiny")
    buffer = io.BytesIO()
    torch.save({"params_ema": release_state_dict(backbone)}, buffer)
    return buffer.getvalue()


def _configure(monkeypatch: pytest.MonkeyPatch, home: Path, endpoint: str, offline: bool) -> None:
    """Point huggingface_hub at ``endpoint`` and a cache under ``home``, as a fresh process
    with HF_HOME, HF_ENDPOINT and HF_HUB_OFFLINE set would."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(
        constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"), raising=False
    )


@pytest.fixture
def hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, authors_file: bytes
) -> Iterator[StandInHub]:
    """The stand-in serving the authors' file under both catalogue entries, and
    huggingface_hub pointed at it with an empty cache."""
    with StandInHub() as server:
        server.add(PAPER.repo, PAPER.filename, authors_file)
        server.add(CTMSR.repo, CTMSR.filename, authors_file)
        _configure(monkeypatch, tmp_path / "hf", server.endpoint, offline=False)
        yield server


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def _image(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "photo.png"
    pixels = np.random.default_rng(0).integers(0, 256, (12, 16, 3), np.uint8)
    PIL.Image.fromarray(pixels).save(path)
    return path


def _cache_files(home: Path) -> list[str]:
    """Every file and link under the cache, relative to it."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if not p.is_dir())


def _error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_catalogue_parameters_are_those_of_the_networks() -> None:
    paper = sum(math.prod(shape) for shape in state_shapes("paper").values())
    assert CATALOGUE["gtasr-paper"].parameters == CATALOGUE["ctmsr"].parameters == paper
    assert CATALOGUE["bundled"].parameters == count_parameters(bundled_model_path())
    assert resolve_model("bundled") == resolve_model(None) == bundled_model_path()


def test_first_download_upscales_then_the_cache_serves_without_the_hub(
    hub: StandInHub, tmp_path: Path, caplog: pytest.LogCaptureFixture, authors_file: bytes
) -> None:
    photo = _image(tmp_path / "in")
    argv = ["upscale", str(photo), "-o", str(tmp_path / "out"), "--model", "gtasr-paper"]
    assert main(argv) == 0
    assert PIL.Image.open(tmp_path / "out" / "photo.png").size == (64, 48)
    file = f"/{PAPER.repo}/resolve/main/{PAPER.filename}"
    assert hub.requests.count(f"GET {file}") == 1
    cached = PAPER.cached()
    assert cached is not None and cached.read_bytes() == authors_file
    first = np.asarray(PIL.Image.open(tmp_path / "out" / "photo.png"))

    hub.shutdown()
    hub.server_close()
    served = len(hub.requests)
    assert main([*argv, "--overwrite"]) == 0
    assert len(hub.requests) == served  # no request, and none could have been answered
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / "out" / "photo.png")), first)
    assert "downloading" in caplog.text and not _error_lines(caplog)


def test_a_download_that_differs_from_the_stated_sha256_is_removed(
    hub: StandInHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub.mode = "corrupt"
    assert main(["info", "--model", "ctmsr"]) == 2
    (line,) = _error_lines(caplog)
    assert line.startswith("gtasr info: error: ctmsr: the downloaded file's SHA-256 is ")
    assert "removed from the cache" in line
    assert CTMSR.cached() is None
    assert not [name for name in _cache_files(tmp_path / "hf") if "/blobs/" in name]


def test_an_interrupted_download_leaves_nothing_and_a_rerun_completes(
    hub: StandInHub,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # huggingface_hub's retry pauses
    hub.mode = "cut"
    assert main(["fetch-model", "gtasr-paper"]) == 2
    (line,) = _error_lines(caplog)
    url = f"{hub.endpoint}/{PAPER.repo}/resolve/main/{PAPER.filename}"
    assert line.startswith(f"gtasr fetch-model: error: gtasr-paper: cannot download {url} (")
    assert "gtasr fetch-model gtasr-paper" in line
    assert PAPER.cached() is None
    leftovers = [name for name in _cache_files(tmp_path / "hf") if "/blobs/" in name]
    assert leftovers == []  # no partial file kept under any name

    hub.mode = "ok"
    assert main(["fetch-model", "gtasr-paper"]) == 0
    assert PAPER.cached() is not None


def test_offline_and_not_cached_names_the_model_url_and_command(
    hub: StandInHub,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _configure(monkeypatch, tmp_path / "hf", hub.endpoint, offline=True)
    assert (
        main(["upscale", str(_image(tmp_path)), "-o", str(tmp_path / "out"), "--model", "ctmsr"])
        == 2
    )
    (line,) = _error_lines(caplog)
    url = f"{hub.endpoint}/{CTMSR.repo}/resolve/main/{CTMSR.filename}"
    assert line == (
        "gtasr upscale: error: ctmsr: not in the local cache and HF_HUB_OFFLINE is set; "
        f"`gtasr fetch-model ctmsr` downloads it from {url} when online"
    )
    assert hub.requests == []


def test_hf_spec_at_a_revision_loads_what_the_local_file_loads(
    hub: StandInHub, tmp_path: Path, authors_file: bytes
) -> None:
    spec = f"hf://{CTMSR.repo}/{CTMSR.filename}@{COMMIT}"
    local = tmp_path / "CTMSR.pth"
    local.write_bytes(authors_file)
    fetched, direct = gtasr.load_model(spec).state_dict(), gtasr.load_model(local).state_dict()
    assert list(fetched) == list(direct)
    assert all(torch.equal(fetched[name], direct[name]) for name in direct)
    assert Upscaler.from_pretrained(spec, device="cpu").family == "release"
    assert hub.requests.count(f"GET /{CTMSR.repo}/resolve/{COMMIT}/{CTMSR.filename}") == 1


def test_a_local_file_wins_over_a_name_and_bad_specs_are_one_line(
    hub: StandInHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("ctmsr").write_bytes(b"local")
    assert resolve_model("ctmsr") == Path("ctmsr")
    with pytest.raises(GtasrError, match=r"^hf://owner/repo: expected hf://OWNER/REPO/FILE"):
        resolve_model("hf://owner/repo")
    with pytest.raises(GtasrError, match=r"^gtasr-papr: model file not found \(nor a model name"):
        resolve_model("gtasr-papr")
    with pytest.raises(GtasrError, match=r"^hf://owner/repo/none.pth: cannot download .*404"):
        resolve_model("hf://owner/repo/none.pth")
    assert hub.requests and all("owner/repo" in request for request in hub.requests)


def test_fetch_model_and_models_from_the_command_line(hub: StandInHub, tmp_path: Path) -> None:
    """A fresh ``gtasr`` process configured by the environment variables alone."""
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_OFFLINE": "0",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }

    def gtasr_cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "gtasr", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    copy = tmp_path / "copies" / "ctmsr.pth"
    fetched = gtasr_cli("fetch-model", "ctmsr", "--output", str(copy))
    assert fetched.returncode == 0, fetched.stderr
    assert copy.read_bytes() == hub.files[f"/{CTMSR.repo}/resolve/main/{CTMSR.filename}"]
    assert gtasr_cli("fetch-model", "ctmsr", "--output", str(copy)).returncode == 2  # exists

    listed = gtasr_cli("models")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert (rows["bundled"][-1], rows["gtasr-paper"][-1], rows["ctmsr"][-1]) == ("yes", "no", "yes")
    assert f"hf://{CTMSR.repo}/{CTMSR.filename}" in rows["ctmsr"]


def test_models_rows_follow_the_cache(hub: StandInHub) -> None:
    before = {row.name: row.cached for row in catalogue_rows()}
    resolve_model("ctmsr")
    after = {row.name: row.cached for row in catalogue_rows()}
    assert before == {"bundled": "yes", "gtasr-paper": "no", "ctmsr": "no"}
    assert after == {"bundled": "yes", "gtasr-paper": "no", "ctmsr": "yes"}


def test_every_command_that_takes_a_model_takes_a_name(
    hub: StandInHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from gtasr.eval.diagnostics import load_models
    from gtasr.modelfile import read_info

    cached = resolve_model("ctmsr")
    assert main(["info", "--model", "ctmsr"]) == 0
    assert f"file        {cached}" in capsys.readouterr().out
    converted = tmp_path / "ctmsr.safetensors"
    assert main(["convert", "ctmsr", "-o", str(converted)]) == 0
    assert read_info(converted).extra["source"] == CTMSR.filename
    (loaded,) = load_models(["ctmsr"], torch.device("cpu"))
    assert loaded.path == cached and loaded.name == "CTMSR"
    served: list[list[Path]] = []
    monkeypatch.setattr("gtasr.web.server.serve", lambda models, **_: served.append(models) or 0)
    assert main(["serve", "--model", "ctmsr", "--model", str(converted)]) == 0
    assert served == [[cached, converted]]
    assert len([r for r in hub.requests if r.startswith("GET")]) == 1  # fetched once
