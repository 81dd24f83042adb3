"""What the web page does, without the web: pick a model, upscale one file or several.

Everything here goes through the same code as ``gtasr upscale`` (reading with
the ``--max-pixels`` rule, :func:`~gtasr.infer.batch.upscale_image`, writing
PNG with alpha and 16 bits kept), so the page and the command line agree on
every pixel. Outputs go to a folder per job; see :class:`JobFolders`.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gtasr.errors import GtasrError
from gtasr.fileio import atomic_path
from gtasr.imageio import read_image
from gtasr.infer.batch import (
    BatchResult,
    UpscaleOptions,
    output_path,
    process_files,
    save_image,
    upscale_image,
)
from gtasr.infer.tiling import TileProgress
from gtasr.infer.upscaler import Upscaler, bundled_model_path

ARCHIVE_NAME = "gtasr-x4.zip"


class ModelCatalog:
    """The models offered by label: the bundled one, then each file given at start.

    A model is loaded on first use for each precision and kept; :meth:`load_all`
    loads every one once so that a bad file stops the server at start rather
    than failing on the page.
    """

    def __init__(
        self, files: Sequence[Path] = (), device: str = "auto", precision: str = "fp32"
    ) -> None:
        self.device = device
        self.precision = precision
        bundled = bundled_model_path()
        self.paths: dict[str, Path] = {f"{bundled.stem} (bundled)": bundled}
        for file in files:
            if file in self.paths.values():
                continue
            label = str(file) if file.name in self.paths else file.name
            self.paths[label] = file
        self._loaded: dict[tuple[str, str], Upscaler] = {}
        self._lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        return list(self.paths)

    def get(self, label: str, precision: str | None = None) -> Upscaler:
        """The Upscaler of model ``label`` in ``precision`` (default: the catalog's)."""
        if label not in self.paths:
            raise GtasrError(f"unknown model {label!r} (choose from {', '.join(self.paths)})")
        key = (label, precision or self.precision)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = Upscaler.from_pretrained(
                    self.paths[label], device=self.device, precision=key[1]
                )
            return self._loaded[key]

    def load_all(self) -> None:
        """Load every model in the default precision (errors surface now, not on the page)."""
        for label in self.paths:
            self.get(label)


class JobFolders:
    """A fresh folder under ``root`` for each job; a new job removes the earlier ones.

    Jobs run one at a time, and the web page copies what a job returns into its
    own cache before the next job starts, so earlier folders are no longer read.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def new(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        for old in self.root.iterdir():
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="job-", dir=self.root))


@dataclass(frozen=True)
class Comparison:
    """The result of one image and its bicubic counterpart, both written as PNG."""

    result: Path
    """The model's full-resolution output (alpha, grayscale and 16 bits kept)."""
    bicubic: Path
    """Bicubic upscaling of the same input to the same size."""
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    tiles: int
    seconds: float
    """Time the model took (reading and writing excluded)."""


def compare(
    source: Path,
    upscaler: Upscaler,
    options: UpscaleOptions,
    on_tile: TileProgress | None = None,
) -> Comparison:
    """Upscale ``source`` with the model and with bicubic into ``options.out_dir``."""
    image = read_image(source, max_pixels=options.max_pixels)
    tiles = 0

    def count(done: int, total: int) -> None:
        nonlocal tiles
        tiles = total
        if on_tile is not None:
            on_tile(done, total)

    start = time.perf_counter()
    result = upscale_image(image, options, upscaler, on_tile=count)
    seconds = time.perf_counter() - start
    bicubic = upscale_image(image, replace(options, method="bicubic"), None)
    target = output_path(source, replace(options, ext="png"), has_alpha=image.alpha is not None)
    bicubic_target = target.with_name(f"{target.stem}-bicubic.png")
    save_image(target, result)
    save_image(bicubic_target, bicubic)
    return Comparison(
        result=target,
        bicubic=bicubic_target,
        input_size=(image.width, image.height),
        output_size=(result.width, result.height),
        tiles=tiles,
        seconds=seconds,
    )


def upscale_many(
    sources: Sequence[Path], upscaler: Upscaler, options: UpscaleOptions
) -> tuple[Path | None, BatchResult]:
    """Upscale ``sources`` into ``options.out_dir`` and zip the results beside that folder.

    Returns the archive (None when no file could be upscaled) and the batch's
    counts and per-file errors.
    """
    result = process_files(list(sources), options, upscaler)
    outputs = sorted(options.out_dir.iterdir()) if options.out_dir.is_dir() else []
    if not outputs:
        return None, result
    archive = options.out_dir.parent / ARCHIVE_NAME
    with atomic_path(archive) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as bundle:
        for output in outputs:
            bundle.write(output, output.name)
    return archive, result
