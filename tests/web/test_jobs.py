"""The page's work without the page: models, one image against bicubic, a batch to zip."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest

from gtasr.cli import main
from gtasr.errors import GtasrError, InputError
from gtasr.imageio import read_image, write_image
from gtasr.infer.batch import UpscaleOptions
from gtasr.infer.tiling import MIN_TILE
from gtasr.infer.upscaler import Upscaler, bundled_model_path
from gtasr.web.jobs import JobFolders, ModelCatalog, compare, upscale_many


@pytest.fixture(scope="module")
def catalog() -> ModelCatalog:
    return ModelCatalog()


@pytest.fixture(scope="module")
def upscaler(catalog: ModelCatalog) -> Upscaler:
    return catalog.get(catalog.labels[0])


def test_compare_writes_what_gtasr_upscale_writes_and_bicubic_beside_it(
    tmp_path: Path, sample_png: Path, upscaler: Upscaler, one_thread: None
) -> None:
    done = compare(sample_png, upscaler, UpscaleOptions(out_dir=tmp_path / "page"))
    assert main(["upscale", str(sample_png), "-o", str(tmp_path / "cli")]) == 0
    cli = np.asarray(PIL.Image.open(tmp_path / "cli" / "sample.png"))
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(done.result)), cli)
    bicubic = PIL.Image.open(sample_png).resize((512, 600), PIL.Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(done.bicubic)), np.asarray(bicubic))
    assert (done.input_size, done.output_size, done.tiles) == ((128, 150), (512, 600), 1)
    assert done.result.parent == done.bicubic.parent == tmp_path / "page"
    assert done.seconds > 0


def test_compare_keeps_alpha_and_16_bits_and_reports_tiles(
    tmp_path: Path, upscaler: Upscaler, one_thread: None
) -> None:
    rng = np.random.default_rng(1)
    source = tmp_path / "deep.png"
    write_image(source, rng.random((200, 24, 3)), alpha=rng.random((200, 24)), bit_depth=16)
    progress: list[tuple[int, int]] = []
    options = UpscaleOptions(out_dir=tmp_path / "out", tile=MIN_TILE, tile_overlap=16)
    done = compare(source, upscaler, options, on_tile=lambda i, n: progress.append((i, n)))
    for path in (done.result, done.bicubic):
        image = read_image(path)
        assert (image.width, image.height, image.bit_depth) == (96, 800, 16)
        assert image.alpha is not None and image.alpha.shape == (800, 96)
        assert path.suffix == ".png"
    assert done.tiles > 1 and progress == [(i, done.tiles) for i in range(1, done.tiles + 1)]


def test_compare_refuses_more_pixels_than_max_pixels(
    tmp_path: Path, noise_png: Any, upscaler: Upscaler
) -> None:
    source = noise_png("big.png", 30, 40)
    with pytest.raises(InputError, match=r"40x30 is 1200 pixels, over the limit of 1000"):
        compare(source, upscaler, UpscaleOptions(out_dir=tmp_path / "out", max_pixels=1000))
    assert not (tmp_path / "out").exists()


def test_upscale_many_zips_the_good_files_and_names_the_bad(
    tmp_path: Path, noise_png: Any, upscaler: Upscaler, one_thread: None
) -> None:
    good = [noise_png(f"g{i}.png", 10, 12) for i in range(2)]
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    options = UpscaleOptions(out_dir=tmp_path / "job" / "x4")
    archive, result = upscale_many([good[0], bad, good[1]], upscaler, options)
    assert archive is not None and archive.parent == tmp_path / "job"
    assert (result.written, result.failed) == (2, 1)
    assert result.errors == [f"{bad}: not a recognised image file"]
    with zipfile.ZipFile(archive) as bundle:
        assert sorted(bundle.namelist()) == ["g0.png", "g1.png"]
        with bundle.open("g1.png") as member:
            assert PIL.Image.open(member).size == (48, 40)
    none, failed = upscale_many([bad], upscaler, UpscaleOptions(out_dir=tmp_path / "j2" / "x4"))
    assert none is None and failed.failed == 1


def test_catalog_offers_the_bundled_model_then_the_given_files(
    tmp_path: Path, catalog: ModelCatalog
) -> None:
    bundled = bundled_model_path()
    copies = [tmp_path / "a" / "m.safetensors", tmp_path / "b" / "m.safetensors"]
    for copy in copies:
        copy.parent.mkdir()
        copy.write_bytes(bundled.read_bytes())
    offered = ModelCatalog([copies[0], copies[1], copies[0]], precision="bf16")
    assert offered.labels == ["gtasr-default (bundled)", "m.safetensors", str(copies[1])]
    offered.load_all()
    assert offered.get("m.safetensors").denoiser.precision == "bf16"
    assert offered.get("m.safetensors", "fp32").denoiser.precision == "fp32"
    assert offered.get("m.safetensors") is offered.get("m.safetensors", "bf16")  # loaded once
    with pytest.raises(GtasrError, match="unknown model 'nope'"):
        offered.get("nope")


def test_catalog_names_a_bad_model_file_at_load(tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_text("garbage")
    with pytest.raises(GtasrError, match=r"broken\.safetensors"):
        ModelCatalog([broken]).load_all()


def test_a_new_job_folder_removes_the_earlier_ones(tmp_path: Path) -> None:
    jobs = JobFolders(tmp_path / "jobs")
    first = jobs.new()
    (first / "result.png").write_bytes(b"x")
    second = jobs.new()
    assert second.is_dir() and not first.exists()
    assert list((tmp_path / "jobs").iterdir()) == [second]


def test_job_folders_older_than_their_lifetime_are_swept(tmp_path: Path) -> None:
    import os
    import time

    jobs = JobFolders(tmp_path / "jobs", lifetime_s=600)
    old = jobs.new()
    (old / "result.png").write_bytes(b"x")
    assert jobs.prune() == []  # young: kept
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert jobs.prune() == [old] and not old.exists()


def test_job_control_stops_a_cancelled_or_abandoned_job_and_waits_for_it(tmp_path: Path) -> None:
    import threading

    from gtasr.web.jobs import JobCancelled, JobControl

    gone: set[str] = set()
    control = JobControl(client_gone=lambda session: session in gone)
    assert not control.cancel("a")  # nothing running
    with control.job("a") as check:
        check()
        assert control.cancel("a")
        with pytest.raises(JobCancelled, match="cancelled"):
            check()
    with control.job("a") as check:
        check()  # a new job of the same visitor starts afresh
        gone.add("a")
        with pytest.raises(JobCancelled, match="closed"):
            check()
    assert control.wait_idle(0)
    started, release = threading.Event(), threading.Event()

    def running() -> None:
        with control.job("b") as check:
            started.set()
            release.wait(10)
            with pytest.raises(JobCancelled, match="stopping"):
                check()

    worker = threading.Thread(target=running)
    worker.start()
    started.wait(10)
    assert not control.wait_idle(0.05)
    control.stop_all()
    release.set()
    assert control.wait_idle(10)
    worker.join()
