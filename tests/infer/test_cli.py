"""``gtasr upscale`` and ``gtasr demo``: naming, baselines, per-file errors, formats."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from gtasr.cli import main
from gtasr.imageio import read_image
from gtasr.infer.batch import UpscaleOptions, memory_tip
from gtasr.infer.noise import image_seed
from gtasr.infer.upscaler import Upscaler


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


def _save(path: Path, height: int = 7, width: int = 10, mode: str = "RGB", seed: int = 0) -> Path:
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)
    PIL.Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode=mode).save(path)
    return path


@pytest.mark.parametrize(
    ("method", "pil_filter"),
    [("bicubic", PIL.Image.Resampling.BICUBIC), ("lanczos", PIL.Image.Resampling.LANCZOS)],
)
def test_baselines_equal_pillow_resize(tmp_path: Path, method: str, pil_filter: int) -> None:
    source = _save(tmp_path / "a.png")
    assert main(["upscale", str(source), "-o", str(tmp_path / "out"), "--method", method]) == 0
    expected = PIL.Image.open(source).resize((40, 28), pil_filter)
    written = PIL.Image.open(tmp_path / "out" / "a.png")
    np.testing.assert_array_equal(np.asarray(written), np.asarray(expected))


def test_existing_outputs_are_skipped_unless_overwrite(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = _save(tmp_path / "a.png")
    out = tmp_path / "out"
    args = ["upscale", str(source), "-o", str(out), "--method", "bicubic"]
    (out).mkdir()
    (out / "a.png").write_bytes(b"keep me")
    assert main(args) == 0
    assert (out / "a.png").read_bytes() == b"keep me"
    assert "skipped" in caplog.text and "--overwrite" in caplog.text
    assert main([*args, "--overwrite"]) == 0
    assert PIL.Image.open(out / "a.png").size == (40, 28)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_bad_files_are_named_and_the_rest_processed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = _save(tmp_path / "good.png")
    big = _save(tmp_path / "big.png", 20, 20)
    broken = tmp_path / "broken.png"
    broken.write_text("not a picture")
    out = tmp_path / "out"
    code = main(
        [
            "upscale",
            str(broken),
            str(big),
            str(tmp_path / "missing.png"),
            str(good),
            "-o",
            str(out),
            "--method",
            "bicubic",
            "--max-pixels",
            "100",
        ]
    )
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]
    for name in ("broken.png", "big.png", "missing.png"):
        assert name in caplog.text
    assert "over the limit of 100" in caplog.text and "1 written" in caplog.text


def test_formats_alpha_gray_16bit_outscale_suffix(tmp_path: Path) -> None:
    _save(tmp_path / "rgba.png", mode="RGBA")
    _save(tmp_path / "gray.png", mode="L")
    sixteen = np.random.default_rng(1).integers(0, 65536, (6, 5), dtype=np.uint16)
    PIL.Image.fromarray(sixteen).save(tmp_path / "deep.png")
    out = tmp_path / "out"
    common = ["-o", str(out), "--method", "lanczos", "--suffix", "_x2", "--outscale", "2"]
    assert main(["upscale", str(tmp_path), *common, "--ext", "jpg"]) == 0
    rgba = PIL.Image.open(out / "rgba_x2.png")  # JPEG cannot hold alpha: PNG instead
    assert rgba.mode == "RGBA" and rgba.size == (20, 14)
    assert PIL.Image.open(out / "gray_x2.jpg").mode == "L"
    deep = read_image(out / "deep_x2.jpg")
    assert deep.bit_depth == 8 and deep.rgb.shape == (12, 10, 3)
    assert main(["upscale", str(tmp_path / "deep.png"), *common, "--overwrite"]) == 0
    deep = read_image(out / "deep_x2.png")
    assert deep.bit_depth == 16 and deep.grayscale and deep.rgb.shape == (12, 10, 3)


def test_quality_and_recursive(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    _save(tmp_path / "in" / "sub" / "deep.png", 32, 32)
    low, high = tmp_path / "low", tmp_path / "high"
    base = ["upscale", str(tmp_path / "in"), "--method", "bicubic", "--ext", "jpg"]
    assert main([*base, "-o", str(low)]) == 1  # the folder itself holds no image
    assert main([*base, "-o", str(low), "--recursive", "--quality", "30"]) == 0
    assert main([*base, "-o", str(high), "--recursive", "--quality", "95"]) == 0
    assert (low / "deep.jpg").stat().st_size < (high / "deep.jpg").stat().st_size


def test_same_output_name_is_an_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = _save(tmp_path / "a" / "x.png"), _save(tmp_path / "b" / "x.jpg")
    out = tmp_path / "out"
    assert main(["upscale", str(first), str(second), "-o", str(out), "--method", "bicubic"]) == 1
    assert "same output name" in caplog.text


@pytest.mark.slow
def test_model_upscale_matches_the_python_api(tmp_path: Path, tiny_model_file: Path) -> None:
    source = _save(tmp_path / "a.png", 12, 12)
    out = tmp_path / "out"
    args = ["upscale", str(source), "-o", str(out), "--model", str(tiny_model_file)]
    assert (
        main([*args, "--tile", "8", "--tile-overlap", "4", "--seed", "3", "--device", "cpu"]) == 0
    )
    up = Upscaler.from_pretrained(tiny_model_file, device="cpu")
    seed = image_seed(3, "a.png")  # the file's seed: --seed and its name
    expected = up.upscale(np.asarray(PIL.Image.open(source)), seed=seed, tile=8, tile_overlap=4)
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(out / "a.png")), expected)


def test_out_of_memory_suggests_tiling(
    tmp_path: Path,
    tiny_model_file: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = _save(tmp_path / "a.png"), _save(tmp_path / "b.png", seed=1)
    original = Upscaler.upscale_rgb

    def exhausted_for_a(self: Upscaler, rgb: np.ndarray, **options: object) -> np.ndarray:
        if rgb.shape == (7, 10, 3) and np.allclose(rgb, read_image(first).rgb):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8 GiB")
        return original(self, rgb, **options)

    monkeypatch.setattr(Upscaler, "upscale_rgb", exhausted_for_a)
    out = tmp_path / "out"
    code = main(
        ["upscale", str(first), str(second), "-o", str(out), "--model", str(tiny_model_file)]
    )
    assert code == 1
    assert "a.png: out of memory; try a smaller --tile" in caplog.text
    assert (out / "b.png").is_file() and not (out / "a.png").exists()


def test_the_out_of_memory_tip_names_the_cause(tmp_path: Path) -> None:
    large = UpscaleOptions(out_dir=tmp_path, outscale=16)
    assert memory_tip(large) == "the output at --outscale 16 is too large; try a smaller one"
    assert "--tile" in memory_tip(UpscaleOptions(out_dir=tmp_path))
    assert "--tile" not in memory_tip(UpscaleOptions(out_dir=tmp_path, method="bicubic"))
