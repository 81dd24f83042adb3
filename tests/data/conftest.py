"""Small image files of every awkward kind, made on the fly."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import pytest


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uint8 RGB image with smooth structure and edges."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = PIL.Image.fromarray(coarse).resize((width, height), PIL.Image.Resampling.BICUBIC)
    return np.asarray(image)


def write_png(path: Path, array: np.ndarray) -> Path:
    PIL.Image.fromarray(array).save(path)
    return path


def bomb_png(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A tiny PNG whose header claims ``width x height`` pixels."""
    buffer = path.with_suffix(".tmp")
    PIL.Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.read_bytes())
    buffer.unlink()
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def truncated_jpeg(path: Path) -> Path:
    full = path.with_suffix(".full")
    PIL.Image.fromarray(textured(96, 96, seed=9)).save(full, format="JPEG", quality=90)
    path.write_bytes(full.read_bytes()[:600])
    full.unlink()
    return path


@pytest.fixture
def awkward_folder(tmp_path: Path) -> Path:
    """Usable photos of several modes plus unusable files."""
    folder = tmp_path / "photos"
    folder.mkdir()
    write_png(folder / "rgb.png", textured(80, 100, seed=1))
    PIL.Image.fromarray(textured(90, 72, seed=2)).convert("L").save(folder / "gray.png")
    PIL.Image.fromarray(textured(72, 72, seed=3)).convert("P").save(folder / "palette.png")
    PIL.Image.fromarray(textured(72, 96, seed=4)).convert("CMYK").save(
        folder / "cmyk.jpg", quality=95
    )
    sixteen = (textured(72, 80, seed=5)[..., 0].astype(np.uint16) * 257).astype(np.uint16)
    PIL.Image.fromarray(sixteen).save(folder / "deep.png")
    rgba = np.dstack([textured(72, 72, seed=6), np.full((72, 72), 255, np.uint8)])
    rgba[:8, :8, 3] = 0
    PIL.Image.fromarray(rgba).save(folder / "alpha.png")
    truncated_jpeg(folder / "truncated.jpg")
    write_png(folder / "tiny.png", np.zeros((1, 1, 3), np.uint8))
    bomb_png(folder / "bomb.png")
    (folder / "notes.png").write_text("not an image")
    return folder


@pytest.fixture
def image_tools() -> SimpleNamespace:
    """The file makers above, for tests that build their own folders."""
    return SimpleNamespace(
        textured=textured, write_png=write_png, bomb_png=bomb_png, truncated_jpeg=truncated_jpeg
    )
