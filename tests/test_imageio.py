"""Reading and writing images: modes, bit depths, orientation, damaged files, listing."""

from __future__ import annotations

import gc
import struct
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import tifffile
import torch

from gtasr.errors import GtasrError, InputError
from gtasr.imageio import quantize, read_image, to_numpy, to_tensor, write_image


def _png_bytes(width: int, height: int, bit_depth: int, color_type: int, raw: bytes) -> bytes:
    """A minimal PNG written by hand (filter type 0 on every row), independent of any library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _png16(path: Path, samples: np.ndarray) -> None:
    """Write uint16 H x W x C (C = 1, 2, 3, 4) as a 16-bit PNG by hand."""
    height, width, planes = samples.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[planes]
    rows = samples.astype(">u2").reshape(height, -1).view(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    path.write_bytes(_png_bytes(width, height, 16, color_type, raw))


def _rng_image(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def test_rgb_png_round_trip_is_exact(tmp_path: Path) -> None:
    pixels = _rng_image(5, 7, 3)
    PIL.Image.fromarray(pixels).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (5, 7, 3)
    assert (image.grayscale, image.bit_depth, image.source_format) == (False, 8, "PNG")
    assert image.alpha is None
    np.testing.assert_array_equal(quantize(image.rgb, 8), pixels)
    write_image(tmp_path / "b.png", image.rgb)
    np.testing.assert_array_equal(np.asarray(PIL.Image.open(tmp_path / "b.png")), pixels)


def test_grayscale_stays_grayscale(tmp_path: Path) -> None:
    pixels = _rng_image(6, 4, 1)[..., 0]
    PIL.Image.fromarray(pixels, mode="L").save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert image.grayscale and image.bit_depth == 8
    for channel in range(3):
        np.testing.assert_array_equal(quantize(image.rgb[..., channel], 8), pixels)
    write_image(tmp_path / "out.png", image.rgb, grayscale=True)
    out = PIL.Image.open(tmp_path / "out.png")
    assert out.mode == "L"
    np.testing.assert_array_equal(np.asarray(out), pixels)


def test_rgba_alpha_is_kept(tmp_path: Path) -> None:
    pixels = _rng_image(4, 5, 4, seed=1)
    PIL.Image.fromarray(pixels, mode="RGBA").save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.alpha is not None and image.alpha.shape == (4, 5)
    np.testing.assert_array_equal(quantize(image.alpha, 8), pixels[..., 3])
    np.testing.assert_array_equal(quantize(image.rgb, 8), pixels[..., :3])
    write_image(tmp_path / "b.png", image.rgb, alpha=image.alpha)
    out = PIL.Image.open(tmp_path / "b.png")
    assert out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out), pixels)


def test_alpha_cannot_go_into_jpeg(tmp_path: Path) -> None:
    with pytest.raises(GtasrError, match="alpha"):
        write_image(tmp_path / "x.jpg", np.zeros((2, 2, 3)), alpha=np.ones((2, 2)))


@pytest.mark.parametrize("planes", [1, 2, 3, 4])
def test_16bit_png_in_16bit_out(tmp_path: Path, planes: int) -> None:
    samples = np.random.default_rng(planes).integers(0, 65536, (3, 5, planes), dtype=np.uint16)
    _png16(tmp_path / "in.png", samples)
    image = read_image(tmp_path / "in.png")
    assert image.bit_depth == 16 and image.grayscale == (planes in (1, 2))
    assert (image.alpha is not None) == (planes in (2, 4))
    color = samples[..., :1] if planes in (1, 2) else samples[..., :3]
    np.testing.assert_array_equal(quantize(image.rgb, 16), np.broadcast_to(color, (3, 5, 3)))
    write_image(
        tmp_path / "out.png",
        image.rgb,
        alpha=image.alpha,
        grayscale=image.grayscale,
        bit_depth=16,
    )
    header = (tmp_path / "out.png").read_bytes()[:26]
    assert header[24] == 16 and header[25] == {1: 0, 2: 4, 3: 2, 4: 6}[planes]
    again = read_image(tmp_path / "out.png")
    np.testing.assert_array_equal(quantize(again.rgb, 16), quantize(image.rgb, 16))
    if planes in (2, 4):
        np.testing.assert_array_equal(quantize(again.alpha, 16), samples[..., -1])


def test_reading_a_16bit_png_closes_the_file(tmp_path: Path) -> None:
    """A server reads many uploads: each file must be closed when read_image returns, not
    left to the garbage collector (which warns of the leak)."""
    _png16(tmp_path / "in.png", np.zeros((2, 3, 4), dtype=np.uint16))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        read_image(tmp_path / "in.png")
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


@pytest.mark.parametrize("planes", [1, 3])
def test_16bit_tiff_in_16bit_out(tmp_path: Path, planes: int) -> None:
    samples = np.random.default_rng(7).integers(0, 65536, (4, 6, planes), dtype=np.uint16)
    data = samples[..., 0] if planes == 1 else samples
    tifffile.imwrite(tmp_path / "in.tif", data, photometric="minisblack" if planes == 1 else "rgb")
    image = read_image(tmp_path / "in.tif")
    assert image.bit_depth == 16 and image.grayscale == (planes == 1)
    np.testing.assert_array_equal(
        quantize(image.rgb, 16), np.broadcast_to(samples, (4, 6, 3)) if planes == 1 else samples
    )
    write_image(tmp_path / "out.tif", image.rgb, grayscale=image.grayscale, bit_depth=16)
    back = tifffile.imread(tmp_path / "out.tif")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, data)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    pixels = _rng_image(3, 5, 3, seed=orientation)
    pil = PIL.Image.fromarray(pixels)
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    pil.save(tmp_path / "o.png", exif=exif.tobytes())
    expected = np.asarray(PIL.ImageOps.exif_transpose(PIL.Image.open(tmp_path / "o.png")))
    image = read_image(tmp_path / "o.png")
    assert image.rgb.shape == expected.shape
    np.testing.assert_array_equal(quantize(image.rgb, 8), expected)


def test_palette_cmyk_and_la_are_converted(tmp_path: Path) -> None:
    rgb = _rng_image(4, 4, 3, seed=3)
    palette = PIL.Image.fromarray(rgb).convert("P", palette=PIL.Image.Palette.ADAPTIVE, colors=8)
    palette.save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(quantize(image.rgb, 8), np.asarray(palette.convert("RGB")))
    assert image.alpha is None

    palette.save(tmp_path / "pt.png", transparency=0)
    with_alpha = read_image(tmp_path / "pt.png")
    expected = np.asarray(PIL.Image.open(tmp_path / "pt.png").convert("RGBA"))
    np.testing.assert_array_equal(quantize(with_alpha.alpha, 8), expected[..., 3])

    cmyk = PIL.Image.fromarray(rgb).convert("CMYK")
    cmyk.save(tmp_path / "c.tif")
    image = read_image(tmp_path / "c.tif")
    assert not image.grayscale
    np.testing.assert_array_equal(quantize(image.rgb, 8), np.asarray(cmyk.convert("RGB")))

    la = _rng_image(3, 3, 2, seed=4)
    PIL.Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    image = read_image(tmp_path / "la.png")
    assert image.grayscale and image.alpha is not None
    np.testing.assert_array_equal(quantize(image.alpha, 8), la[..., 1])
    np.testing.assert_array_equal(quantize(image.rgb[..., 2], 8), la[..., 0])


def test_decompression_bomb_is_rejected_without_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_bytes(30000, 30000, 8, 2, b"\x00" * 64))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"bomb\.png: .*pixels"):
            read_image(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20
    # a limit above Pillow's own (2 x MAX_IMAGE_PIXELS) is the one that holds: Pillow's
    # bomb check does not refuse the file first, so what fails is the missing pixel data
    small = tmp_path / "small-bomb.png"
    small.write_bytes(_png_bytes(14000, 13000, 8, 0, b"\x00" * 64))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"small-bomb\.png: damaged or truncated"):
            read_image(small, max_pixels=10**9)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_max_pixels_limit(tmp_path: Path) -> None:
    PIL.Image.fromarray(_rng_image(4, 4, 3)).save(tmp_path / "s.png")
    with pytest.raises(InputError, match="16 pixels, over the limit of 15"):
        read_image(tmp_path / "s.png", max_pixels=15)
    assert read_image(tmp_path / "s.png", max_pixels=16).rgb.shape == (4, 4, 3)


def test_truncated_and_foreign_files(tmp_path: Path) -> None:
    PIL.Image.fromarray(_rng_image(64, 64, 3)).save(tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.jpg: damaged or truncated"):
        read_image(tmp_path / "cut.jpg")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InputError, match=r"notes\.png: not a recognised image"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(InputError, match="file not found"):
        read_image(tmp_path / "missing.png")


def test_unsupported_mode(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(InputError, match=r"f\.tif: unsupported pixel format 'F'"):
        read_image(tmp_path / "f.tif")


def test_one_pixel_image(tmp_path: Path) -> None:
    PIL.Image.new("RGB", (1, 1), (10, 20, 30)).save(tmp_path / "one.png")
    image = read_image(tmp_path / "one.png")
    np.testing.assert_array_equal(quantize(image.rgb, 8), [[[10, 20, 30]]])
    write_image(tmp_path / "one.webp", image.rgb)
    assert read_image(tmp_path / "one.webp").rgb.shape == (1, 1, 3)


def test_jpeg_quality_option(tmp_path: Path) -> None:
    rgb = _rng_image(64, 64, 3).astype(np.float32) / 255
    write_image(tmp_path / "low.jpg", rgb, quality=20)
    write_image(tmp_path / "high.jpg", rgb, quality=95)
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size


def test_tensor_conversion_round_trip() -> None:
    rgb = _rng_image(3, 4, 3).astype(np.float32) / 255
    tensor = to_tensor(rgb)
    assert tensor.shape == (1, 3, 3, 4) and tensor.dtype == torch.float32
    assert float(tensor.min()) >= -1.0 and float(tensor.max()) <= 1.0
    assert float(tensor[0, 1, 2, 3]) == pytest.approx(rgb[2, 3, 1] * 2 - 1)
    np.testing.assert_allclose(to_numpy(tensor), rgb, atol=1e-6)
    assert to_numpy(torch.full((3, 2, 2), 5.0)).max() == 1.0


def test_16_bit_white_is_zero_tiff_is_inverted_exactly(tmp_path: Path) -> None:
    import tifffile

    values = np.array([[0, 1000, 65535]], np.uint16)
    tifffile.imwrite(tmp_path / "w.tif", values, photometric="miniswhite")
    image = read_image(tmp_path / "w.tif")
    assert image.grayscale and image.bit_depth == 16
    np.testing.assert_array_equal(quantize(image.rgb[..., 0], 16), 65535 - values)
