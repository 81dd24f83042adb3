"""What the web page does, without the web: pick a model, upscale one file or several.

Everything here goes through the same code as ``gtasr upscale`` (reading with
the ``--max-pixels`` rule, :func:`~gtasr.infer.batch.upscale_image`, writing
PNG with alpha and 16 bits kept), so the page and the command line agree on
every pixel. Outputs go to a folder per job; see :class:`JobFolders`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gtasr.errors import GtasrError
from gtasr.fileio import atomic_path
from gtasr.imageio import Image, read_image
from gtasr.infer.batch import (
    BatchResult,
    UpscaleOptions,
    output_path,
    process_files,
    save_image,
    upscale_image,
)
from gtasr.infer.noise import image_seed
from gtasr.infer.resample import resize
from gtasr.infer.tiling import TileProgress
from gtasr.infer.upscaler import Upscaler, bundled_model_path

ARCHIVE_NAME = "gtasr-x4.zip"
PREVIEW_SIDE = 1600
"""Longest side of the slider's images: a 12000x12000 result is shown at this size (two
full-size PNGs would be hundreds of MB for the browser); the download stays full size."""
JOB_FOLDER_LIFETIME_S = 600.0
"""A job's folder is removed this long after it was made, or when the next job starts."""

Phase = Callable[[str], None]
"""``on_phase(description)``: what a job does now, for the page's progress bar."""


class JobCancelled(Exception):
    """The visitor pressed Cancel, left the page, or the server is stopping.

    Not a :class:`GtasrError`: a batch must not count it as one failed file and go on.
    """


class JobControl:
    """Which visitors' jobs must stop: each job checks between tiles and phases.

    A job belongs to a visitor's session. Cancel (or a client that went away, as
    ``client_gone`` tells) stops it at the next tile; :meth:`stop_all` stops every job
    when the server shuts down, and :meth:`wait_idle` waits for the running one to end.
    """

    def __init__(self, client_gone: Callable[[str], bool] | None = None) -> None:
        self._cancelled: set[str] = set()
        self._running: dict[str, int] = {}
        self._stopping = False
        self._idle = threading.Condition()
        self.client_gone = client_gone

    @contextlib.contextmanager
    def job(self, session: str) -> Iterator[Callable[[], None]]:
        """Run one job of ``session``; yields ``check()``, which raises :class:`JobCancelled`
        once the job must stop."""
        with self._idle:
            self._cancelled.discard(session)
            self._running[session] = self._running.get(session, 0) + 1

        def check() -> None:
            if self._stopping:
                raise JobCancelled("the server is stopping")
            if session in self._cancelled:
                raise JobCancelled("cancelled")
            if self.client_gone is not None and self.client_gone(session):
                raise JobCancelled("the page that asked for it was closed")

        try:
            check()
            yield check
        finally:
            with self._idle:
                self._running[session] -= 1
                if not self._running[session]:
                    del self._running[session]
                self._cancelled.discard(session)
                self._idle.notify_all()

    def cancel(self, session: str) -> bool:
        """Ask the job of ``session`` to stop; False when it has none running."""
        with self._idle:
            if session not in self._running:
                return False
            self._cancelled.add(session)
            return True

    def stop_all(self) -> None:
        """Every running and later job stops (the server is shutting down)."""
        self._stopping = True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs; False if one still does after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._running, timeout)


class ModelCatalog:
    """The models offered by label: the bundled one, then each file given at start.

    A model is loaded on first use for each precision and kept; :meth:`load_all`
    loads every one once so that a bad file stops the server at start rather
    than failing on the page.
    """

    def __init__(
        self,
        files: Sequence[Path] = (),
        device: str = "auto",
        precision: str = "fp32",
        backend: str = "auto",
    ) -> None:
        self.device = device
        self.precision = precision
        self.backend = backend
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
                    self.paths[label], device=self.device, precision=key[1], backend=self.backend
                )
            return self._loaded[key]

    def load_all(self) -> None:
        """Load every model in the default precision (errors surface now, not on the page)."""
        for label in self.paths:
            self.get(label)


class JobFolders:
    """A fresh folder under ``root`` for each job; a new job removes the earlier ones.

    Jobs run one at a time, and the web page copies what a job returns into its
    own cache before the next job starts, so earlier folders are no longer read;
    :meth:`prune` also removes those older than ``lifetime_s`` while the server idles.
    """

    def __init__(self, root: Path, lifetime_s: float = JOB_FOLDER_LIFETIME_S) -> None:
        self.root = root
        self.lifetime_s = lifetime_s

    def new(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        for old in self.root.iterdir():
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="job-", dir=self.root))

    def prune(self) -> list[Path]:
        """Remove the job folders older than ``lifetime_s``; returns them."""
        removed = []
        if not self.root.is_dir():
            return removed
        deadline = time.time() - self.lifetime_s
        for folder in self.root.iterdir():
            with contextlib.suppress(OSError):
                if folder.stat().st_mtime < deadline:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        return removed


@dataclass(frozen=True)
class Comparison:
    """The result of one image and its bicubic counterpart, both written as PNG."""

    result: Path
    """The model's full-resolution output (alpha, grayscale and 16 bits kept)."""
    bicubic: Path
    """Bicubic upscaling of the same input to the slider's size (:attr:`preview`'s)."""
    preview: Path
    """What the slider shows of the result: :attr:`result` itself when its longest side is
    at most :data:`PREVIEW_SIDE`, else an 8-bit copy shrunk to that side."""
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
    on_phase: Phase | None = None,
) -> Comparison:
    """Upscale ``source`` with the model and with bicubic into ``options.out_dir``.

    ``on_phase`` hears each stage after the tiles (bicubic, writing), which take long
    for large images; an exception it or ``on_tile`` raises stops the job there.
    """
    phase = on_phase or (lambda description: None)
    phase("Reading the image")
    image = read_image(source, max_pixels=options.max_pixels)
    tiles = 0

    def count(done: int, total: int) -> None:
        nonlocal tiles
        tiles = total
        if on_tile is not None:
            on_tile(done, total)

    start = time.perf_counter()
    seed = image_seed(options.seed, source.name)  # a file's seed in gtasr upscale
    result = upscale_image(image, options, upscaler, on_tile=count, seed=seed)
    seconds = time.perf_counter() - start
    target = output_path(source, replace(options, ext="png"), has_alpha=image.alpha is not None)
    phase("Writing the full-resolution PNG")
    save_image(target, result)
    phase("Bicubic x4 for the comparison")
    bicubic = upscale_image(image, replace(options, method="bicubic"), None)
    preview, bicubic = _for_the_slider(target, result), shrink(bicubic, PREVIEW_SIDE)
    phase("Writing the comparison")
    bicubic_target = target.with_name(f"{target.stem}-bicubic.png")
    save_image(bicubic_target, bicubic)
    return Comparison(
        result=target,
        bicubic=bicubic_target,
        preview=preview,
        input_size=(image.width, image.height),
        output_size=(result.width, result.height),
        tiles=tiles,
        seconds=seconds,
    )


def _for_the_slider(full: Path, result: Image) -> Path:
    """The result file itself when small enough, else a shrunk 8-bit copy beside it."""
    small = shrink(result, PREVIEW_SIDE)
    if small is result:
        return full
    preview = full.with_name(f"{full.stem}-preview.png")
    save_image(preview, small)
    return preview


def shrink(image: Image, side: int) -> Image:
    """``image`` with its longest side cut to ``side`` (Lanczos, 8 bits), or itself."""
    longest = max(image.width, image.height)
    if longest <= side:
        return image
    width = max(1, round(image.width * side / longest))
    height = max(1, round(image.height * side / longest))
    alpha = None if image.alpha is None else resize(image.alpha, width, height, "lanczos", 8)
    return Image(
        rgb=resize(image.rgb, width, height, "lanczos", 8),
        alpha=alpha,
        grayscale=image.grayscale,
        bit_depth=8,
        source_format=image.source_format,
    )


def upscale_many(
    sources: Sequence[Path],
    upscaler: Upscaler,
    options: UpscaleOptions,
    on_tile: TileProgress | None = None,
) -> tuple[Path | None, BatchResult]:
    """Upscale ``sources`` into ``options.out_dir`` and zip the results beside that folder.

    Returns the archive (None when no file could be upscaled) and the batch's
    counts and per-file errors. ``on_tile`` hears every tile of every file.
    """
    result = process_files(list(sources), options, upscaler, on_tile=on_tile)
    outputs = sorted(options.out_dir.iterdir()) if options.out_dir.is_dir() else []
    if not outputs:
        return None, result
    archive = options.out_dir.parent / ARCHIVE_NAME
    with atomic_path(archive) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as bundle:
        for output in outputs:
            bundle.write(output, output.name)
    return archive, result
