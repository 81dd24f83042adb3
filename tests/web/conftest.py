"""A ``gtasr serve`` process for the web tests, started as a user would start it.

The web tests need the ``web`` extra (Gradio) and, for the browser test,
Debian's ``chromium`` and ``chromium-driver`` with Selenium (never a browser
that a tool downloads). Where they are missing the tests
are skipped, unless ``GTASR_WEB_TESTS=required`` (set by ``.ci/run``, which
installs them): then a missing piece is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "gtasr" / "assets" / "sample.png"
MAX_PIXELS = 40_000
"""The shared server's --max-pixels: above the sample (128 x 150), below 200 x 201."""
START_TIMEOUT = 240.0
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests may run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1150",
)


def require(what: str, available: bool) -> None:
    """Skip without ``what``; fail instead where the CI says the web tests must run."""
    if available:
        return
    message = f"{what} is not installed"
    if os.environ.get("GTASR_WEB_TESTS") == "required":
        pytest.fail(f"{message}, and GTASR_WEB_TESTS=required")
    pytest.skip(message)


@pytest.fixture
def web_extra() -> None:
    """Gradio and its client are installed (skip or fail otherwise, see :func:`require`)."""
    require("the web extra (gradio, gradio_client)", _importable("gradio", "gradio_client"))


@pytest.fixture(autouse=True)
def client_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's own temporary folder for this process only (children keep TMPDIR:
    Chromium did not start with a TMPDIR under tmp_path).

    gradio_client downloads each result through a folder of its own under the temporary
    folder and leaves that folder behind, empty: without this every web test run would
    leave such folders in /tmp.
    """
    folder = tmp_path / "client-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))


@pytest.fixture(scope="session")
def sample_png() -> Path:
    """The bundled sample image (128 x 150 RGB)."""
    return SAMPLE


def _importable(*names: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in names)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A running ``gtasr serve``: its address, its process and its folders."""

    url: str
    max_pixels: int | None
    process: subprocess.Popen[bytes]
    log: Path
    tmp: Path
    """The server's TMPDIR: every file it writes must be under it, and gone at exit."""
    cwd: Path
    home: Path

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def start_server(folder: Path, max_pixels: int | None = None, extra: Sequence[str] = ()) -> Server:
    """Start ``gtasr serve`` with its own TMPDIR, working folder and HOME under ``folder``,
    and ``extra`` options."""
    tmp, cwd, home = folder / "tmp", folder / "cwd", folder / "home"
    for empty in (tmp, cwd, home):
        empty.mkdir(parents=True)
    port = free_port()
    log = folder / "server.log"
    env = {**os.environ, "TMPDIR": str(tmp), "HOME": str(home)}
    env.pop("XDG_CACHE_HOME", None)
    command = [sys.executable, "-m", "gtasr", "serve", "--port", str(port)]
    if max_pixels is not None:
        command += ["--max-pixels", str(max_pixels)]
    command += list(extra)
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=sink)
    server = Server(f"http://127.0.0.1:{port}/", max_pixels, process, log, tmp, cwd, home)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gtasr serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(server.url, timeout=5):
                return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    server.stop()
    pytest.fail(f"gtasr serve did not answer within {START_TIMEOUT} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session's web tests, with a small --max-pixels."""
    require("the web extra (gradio, gradio_client)", _importable("gradio", "gradio_client"))
    running = start_server(tmp_path_factory.mktemp("serve"), MAX_PIXELS)
    yield running
    running.stop()


@pytest.fixture
def own_server(tmp_path: Path, web_extra: None) -> Iterator[Server]:
    """A server of the test's own (default settings), stopped afterwards if still running."""
    running = start_server(tmp_path / "serve")
    yield running
    running.stop()


@pytest.fixture
def noise_png(tmp_path: Path) -> Callable[[str, int, int], Path]:
    """``noise_png(name, height, width)``: a random 8-bit RGB PNG in tmp_path."""

    def write(name: str, height: int, width: int) -> Path:
        pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(tmp_path / name)
        return tmp_path / name

    return write


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Debian Chromium driven by Selenium, recording its network requests."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    require("Debian's chromium and chromium-driver", bool(chromium and driver))
    require("selenium", _importable("selenium"))
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for downloads
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    session = webdriver.Chrome(service=Service(str(driver)), options=options)
    yield session
    session.quit()
