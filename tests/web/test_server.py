"""``gtasr serve`` through its API, with ``gradio_client``, as a script would use it."""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest

from gtasr.cli import main
from gtasr.imageio import read_image, write_image

pytestmark = pytest.mark.slow
RESULT_TIMEOUT = 300


@pytest.fixture
def client(server: Any, tmp_path: Path) -> Any:
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=str(tmp_path / "downloads"))


def _call(client: Any, *args: Any, api_name: str = "/upscale", **settings: Any) -> Any:
    from gradio_client import handle_file

    files = [handle_file(str(a)) if isinstance(a, Path) else a for a in args]
    if files and isinstance(files[0], list):
        files[0] = [handle_file(str(p)) for p in files[0]]
    return client.submit(*files, api_name=api_name, **settings).result(timeout=RESULT_TIMEOUT)


def test_upscale_endpoint_needs_only_the_image_and_matches_the_cli(
    client: Any, sample_png: Path, tmp_path: Path
) -> None:
    (bicubic, gtasr), download, info = _call(client, sample_png)
    assert main(["upscale", str(sample_png), "-o", str(tmp_path / "cli")]) == 0
    cli = np.asarray(PIL.Image.open(tmp_path / "cli" / "sample.png"), dtype=np.int16)
    # the server runs OpenVINO (auto, its own process), the command here torch
    # (tests/conftest.py): the same picture within rounding
    for page in (download, gtasr):
        difference = np.abs(np.asarray(PIL.Image.open(page), dtype=np.int16) - cli)
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    expected = PIL.Image.open(sample_png).resize((512, 600), PIL.Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(bicubic)), np.asarray(expected))
    assert info.startswith("128x150 → 512x600 in **")
    assert client.config["analytics_enabled"] is False


def test_download_keeps_alpha_and_16_bits(client: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    source = tmp_path / "deep.png"
    write_image(source, rng.random((12, 10, 3)), alpha=rng.random((12, 10)), bit_depth=16)
    _, download, _ = _call(client, source, steps=2, tile=0)
    result = read_image(download)
    assert (result.width, result.height, result.bit_depth) == (40, 48, 16)
    assert result.alpha is not None


def test_a_bad_file_is_named_in_the_error_and_the_server_goes_on(
    client: Any, sample_png: Path, noise_png: Any, tmp_path: Path
) -> None:
    from gradio_client.exceptions import AppError

    bad = tmp_path / "holiday.png"
    bad.write_text("this is not a picture")
    with pytest.raises(AppError, match=r"^holiday.png: not a recognised image file$"):
        _call(client, bad)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(sample_png.read_bytes()[:3000])
    with pytest.raises(AppError, match=r"^cut.png: damaged or truncated image"):
        _call(client, truncated)
    small = noise_png("small.png", 8, 6)
    assert _call(client, small)[2].startswith("6x8 → 24x32 in")


def test_an_image_over_max_pixels_is_refused_with_the_limit(
    client: Any, server: Any, noise_png: Any
) -> None:
    from gradio_client.exceptions import AppError

    big = noise_png("big.png", 201, 200)
    limit = f"{server.max_pixels:,}"
    expected = f"big.png: 200x201 is 40,200 pixels; this page takes images of up to {limit} pixels$"
    with pytest.raises(AppError, match=f"^{expected}") as refused:
        _call(client, big)
    assert "--max-pixels" not in str(refused.value)  # the page's words, not the CLI's


def test_settings_are_checked_like_the_command_line(client: Any, sample_png: Path) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"^--steps must be within 1..64, not 0$"):
        _call(client, sample_png, steps=0)
    with pytest.raises(AppError, match=r"^tile must be a whole number, not 32.5$"):
        _call(client, sample_png, tile=32.5)
    with pytest.raises(AppError, match=r"^unknown model 'other'"):
        _call(client, sample_png, model="other")


def test_batch_zips_the_results_and_names_the_bad_files(
    client: Any, sample_png: Path, noise_png: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("shopping list")
    small = noise_png("small.png", 8, 6)
    archive, summary = _call(client, [sample_png, bad, small], api_name="/upscale_batch")
    first, *rest = summary.splitlines()
    assert re.fullmatch(r"2 upscaled, 1 failed, in \d+\.\d\d s from pressing Upscale all\.", first)
    assert rest == ["- notes.png: not a recognised image file"]
    with zipfile.ZipFile(archive) as bundle:
        assert sorted(bundle.namelist()) == ["sample.png", "small.png"]
        with bundle.open("sample.png") as member:
            assert PIL.Image.open(member).size == (512, 600)


def test_one_job_runs_at_a_time_and_waiting_jobs_see_their_place(
    client: Any, server: Any, noise_png: Any
) -> None:
    from gradio_client import handle_file
    from gradio_client.utils import Status

    log_before = server.log.stat().st_size
    image = handle_file(str(noise_png("tall.png", 200, 128)))
    jobs = [client.submit(image, tile=32, api_name="/upscale") for _ in range(3)]
    busy = {Status.PROCESSING, Status.PROGRESS}
    places, tile_progress = set(), set()
    while not all(job.done() for job in jobs):
        statuses = [job.status() for job in jobs]
        if any(status.code in busy for status in statuses):
            places.update(
                (status.rank, status.queue_size)
                for status in statuses
                if status.code == Status.IN_QUEUE and status.rank is not None
            )
        for status in statuses:
            tile_progress.update((unit.unit, unit.length) for unit in status.progress_data or [])
        time.sleep(0.05)
    for job in jobs:
        assert job.result(timeout=RESULT_TIMEOUT)[2].startswith("128x200 → 512x800")
    with open(server.log, "rb") as log:
        log.seek(log_before)
        events = re.findall(r"^job (\d+) \(upscale\) (started|finished)", log.read().decode(), re.M)
    assert len(events) == 6
    for start, end in zip(events[::2], events[1::2], strict=True):
        assert (start[1], end[1], start[0]) == ("started", "finished", end[0])  # never two at once
    assert places  # a job waiting behind a running one was told its place in the queue
    assert ("tiles", 2) in tile_progress  # the progress bar counts tiles (32 is raised to MIN_TILE)


def test_server_writes_only_its_temporary_folder_and_removes_it(
    own_server: Any, sample_png: Path, tmp_path: Path
) -> None:
    from gradio_client import Client

    client = Client(own_server.url, verbose=False, download_files=str(tmp_path / "downloads"))
    assert _call(client, sample_png)[2].startswith("128x150 → 512x600")
    assert [p.name.startswith("gtasr-serve-") for p in own_server.tmp.iterdir()] == [True]
    code = own_server.stop()
    log = own_server.log.read_text()
    assert code == 0, log
    assert "stopped; removed" in log
    for folder in (own_server.tmp, own_server.cwd, own_server.home):
        assert list(folder.iterdir()) == [], folder
