"""Long jobs on the page: Cancel, a visitor who leaves, a server stopped mid-job, previews,
warnings on the page, upload limits; each against a real ``gtasr serve``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import PIL.Image
import pytest

from gtasr.infer.tiling import MIN_TILE

from .conftest import Server, start_server

pytestmark = pytest.mark.slow
WAIT = 300


def _client(server: Server, tmp_path: Path) -> Any:
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=str(tmp_path / "downloads"))


def _long_job(client: Any, image: Path) -> Any:
    """A job of many tiles and eight network steps each: seconds on any CPU."""
    from gradio_client import handle_file

    return client.submit(handle_file(str(image)), steps=8, tile=MIN_TILE, api_name="/upscale")


def _until_processing(job: Any) -> None:
    from gradio_client.utils import Status

    deadline = time.monotonic() + WAIT
    while not (job.status().code == Status.PROGRESS and job.status().progress_data):
        assert not job.done(), job.result()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _log_line(server: Server, pattern: str, timeout: float = 60) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, server.log.read_text(), re.M)
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"no log line {pattern!r}:\n{server.log.read_text()}")


def test_cancel_stops_the_job_between_tiles_and_the_next_one_runs(
    own_server: Server, noise_png: Any, tmp_path: Path
) -> None:
    from gradio_client.exceptions import AppError

    client = _client(own_server, tmp_path)
    job = _long_job(client, noise_png("big.png", 480, 480))
    _until_processing(job)
    pressed = time.monotonic()
    assert client.predict(api_name="/cancel") == "Cancelling…"
    with pytest.raises(AppError, match="Stopped: cancelled"):
        job.result(timeout=WAIT)
    assert time.monotonic() - pressed < 30  # at the next tile, not at the end
    _log_line(own_server, r"^job 1 \(upscale\) cancelled \(cancelled\)")
    assert client.predict(api_name="/cancel") == "Nothing is running."
    small = noise_png("small.png", 8, 6)
    from gradio_client import handle_file

    summary = client.predict(handle_file(str(small)), api_name="/upscale")[2]
    assert summary.startswith("6x8 → 24x32 in")


LEAVER = textwrap.dedent(
    f"""
    import sys, time
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status
    client = Client(sys.argv[1], verbose=False)
    job = client.submit(handle_file(sys.argv[2]), steps=8, tile={MIN_TILE}, api_name="/upscale")
    while job.status().code != Status.PROGRESS:
        time.sleep(0.05)
    print("processing", flush=True)
    time.sleep(600)
    """
)


def test_a_job_whose_visitor_left_is_stopped(own_server: Server, noise_png: Any) -> None:
    """A client killed mid-job (its connection closes) stops the job at the next tile."""
    leaver = subprocess.Popen(
        [sys.executable, "-c", LEAVER, own_server.url, str(noise_png("big.png", 480, 480))],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": tempfile.gettempdir()},  # the test's, see conftest
    )
    try:
        assert leaver.stdout is not None and leaver.stdout.readline().strip() == "processing"
    finally:
        leaver.kill()
        leaver.wait(timeout=60)
    _log_line(own_server, r"^job 1 \(upscale\) cancelled \(the page that asked for it was closed\)")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_job_stops_it_and_exits_cleanly(
    tmp_path: Path, web_extra: None, noise_png: Any, signum: int, code: int
) -> None:
    server = start_server(tmp_path / "serve")
    try:
        job = _long_job(_client(server, tmp_path), noise_png("big.png", 480, 480))
        _until_processing(job)
        server.process.send_signal(signum)
        assert server.process.wait(timeout=120) == code, server.log.read_text()
    finally:
        server.stop()
    log = server.log.read_text()
    assert "terminate called" not in log and "Traceback" not in log, log
    assert re.search(r"^job 1 \(upscale\) cancelled \(the server is stopping\)", log, re.M)
    assert "stopped; removed" in log
    assert list(server.tmp.iterdir()) == []


def test_a_large_result_is_previewed_small_and_downloaded_whole(
    own_server: Server, noise_png: Any, tmp_path: Path
) -> None:
    from gradio_client import handle_file
    from gradio_client.utils import Status

    client = _client(own_server, tmp_path)
    job = client.submit(handle_file(str(noise_png("wide.png", 420, 480))), api_name="/upscale")
    phases = set()
    while not job.done():
        status = job.status()
        if status.code == Status.PROGRESS:
            phases.update(unit.desc for unit in status.progress_data or [])
        time.sleep(0.02)
    (bicubic, preview), download, summary = job.result(timeout=WAIT)
    assert PIL.Image.open(download).size == (1920, 1680)
    assert PIL.Image.open(preview).size == PIL.Image.open(bicubic).size == (1600, 1400)
    assert "The slider shows a smaller preview; the download is full size." in summary
    assert "Writing the full-resolution PNG" in phases  # the page is told, not silent


def test_what_gtasr_warns_of_is_shown_on_the_page(client_of_shared: Any, sample_png: Path) -> None:
    from gradio_client import handle_file

    summary = client_of_shared.predict(handle_file(str(sample_png)), tile=32, api_name="/upscale")
    assert f"Note: tile 32 is below the smallest seamless tile; using {MIN_TILE}" in summary[2]


@pytest.fixture
def client_of_shared(server: Server, tmp_path: Path) -> Any:
    return _client(server, tmp_path)


def test_an_upload_over_the_limit_is_refused(tmp_path: Path, web_extra: None) -> None:
    from gradio_client import handle_file

    server = start_server(tmp_path / "serve", extra=["--max-upload-mb", "1"])
    try:
        big = tmp_path / "big.bmp"
        PIL.Image.new("RGB", (800, 600)).save(big)  # 1.4 MB
        with pytest.raises(Exception, match=r"413|too large|exceeds"):
            _client(server, tmp_path).predict(handle_file(str(big)), api_name="/upscale")
    finally:
        assert server.stop() == 0
    assert "job 1 (upscale) started" not in server.log.read_text()
