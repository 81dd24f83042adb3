"""``gtasr upscale`` on collections: each file's seed, ``--manifest``, ``--ray`` without Ray."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from gtasr.choices import MAX_SEED
from gtasr.cli import main
from gtasr.infer.noise import image_seed
from gtasr.infer.upscaler import Upscaler


def _save(path: Path, seed: int = 0, size: int = 12) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)
    PIL.Image.fromarray(pixels).save(path)
    return path


def test_image_seed_mixes_the_seed_and_the_name() -> None:
    seeds = {image_seed(seed, name) for seed in (0, 1, MAX_SEED) for name in ("a.png", "b/a.png")}
    assert len(seeds) == 6
    assert all(0 <= seed <= MAX_SEED for seed in seeds)
    assert image_seed(7, "trip/a.png") == image_seed(7, "trip/a.png")


def test_each_file_is_seeded_by_its_path_under_its_input_root(
    tmp_path: Path, tiny_model_file: Path, one_thread: None
) -> None:
    first = _save(tmp_path / "in" / "trip" / "a.png")
    twin = tmp_path / "in" / "b.png"
    shutil.copy(first, twin)  # the same pixels under another name
    common = ["--model", str(tiny_model_file), "--seed", "5", "--device", "cpu"]
    common += ["--backend", "torch"]  # the PyTorch path through the command line
    args = ["upscale", str(tmp_path / "in"), "--recursive", *common]
    assert main([*args, "-o", str(tmp_path / "folder")]) == 0
    assert main(["upscale", str(first), *common, "-o", str(tmp_path / "file")]) == 0

    up = Upscaler.from_pretrained(tiny_model_file, device="cpu", backend="torch")
    pixels = np.asarray(PIL.Image.open(first))
    for out, name in (("folder", "trip/a.png"), ("file", "a.png")):
        written = np.asarray(PIL.Image.open(tmp_path / out / "a.png"))
        np.testing.assert_array_equal(written, up.upscale(pixels, seed=image_seed(5, name)))
    twin_out = np.asarray(PIL.Image.open(tmp_path / "folder" / "b.png"))
    np.testing.assert_array_equal(twin_out, up.upscale(pixels, seed=image_seed(5, "b.png")))
    assert not np.array_equal(twin_out, np.asarray(PIL.Image.open(tmp_path / "folder" / "a.png")))


def test_manifest_has_a_line_for_every_input(tmp_path: Path) -> None:
    good, done = _save(tmp_path / "in" / "good.png"), _save(tmp_path / "in" / "done.png", 1)
    (tmp_path / "in" / "bad.png").write_bytes(b"not an image")
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    (out).mkdir()
    (out / "done.png").write_bytes(b"kept")
    missing = tmp_path / "missing.png"
    args = ["upscale", str(tmp_path / "in"), str(missing), "-o", str(out), "--method", "bicubic"]
    assert main([*args, "--manifest", str(manifest)]) == 1

    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    by_input = {line["input"]: line for line in lines}
    assert set(by_input) == {str(missing), str(good), str(done), str(tmp_path / "in" / "bad.png")}
    assert by_input[str(good)]["status"] == "written"
    assert by_input[str(good)]["output"] == str(out / "good.png")
    assert by_input[str(good)]["error"] is None and by_input[str(good)]["seconds"] > 0
    assert by_input[str(done)]["status"] == "skipped"
    bad = by_input[str(tmp_path / "in" / "bad.png")]
    assert bad["status"] == "failed" and "bad.png: not a recognised image" in bad["error"]
    assert by_input[str(missing)]["status"] == "failed"
    assert "no such file" in by_input[str(missing)]["error"]
    assert (out / "done.png").read_bytes() == b"kept"


def test_a_stopped_run_leaves_what_it_recorded_as_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gtasr.infer import batch

    first, second = _save(tmp_path / "in" / "a.png"), _save(tmp_path / "in" / "b.png", 1)
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    process_one = batch.process_one

    def stop_at_second(source: Path, *args: object) -> object:
        if source.name == second.name:
            raise KeyboardInterrupt
        return process_one(source, *args)

    monkeypatch.setattr(batch, "process_one", stop_at_second)
    args = ["upscale", str(first), str(second), "-o", str(out), "--method", "bicubic"]
    assert main([*args, "--manifest", str(manifest)]) == 130
    assert not manifest.exists()
    lines = [json.loads(line) for line in Path(f"{manifest}.partial").read_text().splitlines()]
    assert [(line["input"], line["status"]) for line in lines] == [(str(first), "written")]
    assert (out / "a.png").is_file() and not (out / "b.png").exists()


def test_ray_without_ray_installed_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    source = _save(tmp_path / "a.png")
    caplog.set_level(logging.ERROR)
    code = main(["upscale", str(source), "-o", str(tmp_path / "out"), "--ray"])
    assert code == 2
    assert len(caplog.records) == 1
    assert "pip install 'gtasr[ray]'" in caplog.records[0].getMessage()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("input", "s3://photos/set: URIs as INPUT or -o need --ray"),
        ("output", "s3://photos/big: URIs as INPUT or -o need --ray"),
    ],
)
def test_uris_without_ray_stop_with_one_line(
    where: str, message: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, out = str(_save(tmp_path / "a.png")), str(tmp_path / "out")
    if where == "input":
        source = "s3://photos/set?endpoint_override=127.0.0.1:9&secret_key=hidden"
    else:
        out = "s3://photos/big?secret_key=hidden"
    caplog.set_level(logging.ERROR)
    assert main(["upscale", source, "-o", out, "--method", "bicubic"]) == 2
    assert [record.getMessage() for record in caplog.records] == [
        f"gtasr upscale: error: {message}"
    ]
    assert not (tmp_path / "out").exists()


def test_a_uri_that_pyarrow_cannot_open_is_one_line_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = str(_save(tmp_path / "a.png"))
    caplog.set_level(logging.ERROR)
    args = ["upscale", source, "-o", "nosuch://bucket/out", "--method", "bicubic", "--ray"]
    assert main(args) == 2
    [message] = [record.getMessage() for record in caplog.records]
    assert message.startswith(
        "gtasr upscale: error: nosuch://bucket/out: cannot open its filesystem ("
    )
    assert "\n" not in message
