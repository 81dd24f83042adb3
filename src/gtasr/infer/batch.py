"""Upscaling many files: output naming, skipping, per-file errors, atomic writes, seeds.

One bad file never stops a batch: its problem is logged with its name and
the batch goes on; the caller turns the failure count into the exit code.
Each file's noise comes from the run's seed and the file's name relative to its
input root (:func:`~gtasr.infer.noise.image_seed`), so a file's output is the same
in any batch, in any order and on any worker (:mod:`gtasr.integrations.ray`
calls :func:`upscale_file` on each of its workers).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gtasr.choices import (
    DEFAULT_TILE,
    DEFAULT_TILE_OVERLAP,
    MAX_OUTSCALE,
    MAX_STEPS,
    OUTPUT_EXTENSIONS,
    UPSCALE_METHODS,
)
from gtasr.errors import FileError, GtasrError, InputError, is_out_of_memory, one_line
from gtasr.imageio import Image, read_image, write_image
from gtasr.infer.noise import image_seed
from gtasr.infer.resample import resize
from gtasr.infer.tiling import TileProgress, seamless_tiling
from gtasr.infer.upscaler import Upscaler, upscale_alpha

log = logging.getLogger(__name__)

_ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")
"""Inputs that may carry alpha, whose output is a PNG even with ``--ext jpg``."""


@dataclass(frozen=True)
class UpscaleOptions:
    """Everything ``gtasr upscale`` needs besides the inputs and the model."""

    out_dir: Path
    method: str = "model"
    seed: int = 0
    tile: int | None = DEFAULT_TILE
    tile_overlap: int = DEFAULT_TILE_OVERLAP
    steps: int = 1
    outscale: float = 4.0
    suffix: str = ""
    ext: str = "auto"
    quality: int = 95
    overwrite: bool = False
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.method not in UPSCALE_METHODS:
            raise GtasrError(
                f"unknown --method {self.method!r} (choose from {', '.join(UPSCALE_METHODS)})"
            )
        if self.ext not in OUTPUT_EXTENSIONS:
            raise GtasrError(
                f"unknown --ext {self.ext!r} (choose from {', '.join(OUTPUT_EXTENSIONS)})"
            )
        if not 0 < self.outscale <= MAX_OUTSCALE:
            limit = f"{MAX_OUTSCALE:g}"
            raise GtasrError(f"--outscale must be above 0 and at most {limit}, not {self.outscale}")
        if not 1 <= self.quality <= 100:
            raise GtasrError(f"--quality must be within 1..100, not {self.quality}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise GtasrError(f"--steps must be within 1..{MAX_STEPS}, not {self.steps}")
        if self.tile is not None and self.tile < 0:
            raise GtasrError(f"--tile must be 0 (off) or positive, not {self.tile}")
        if self.tile == 0:  # the command line's and the page's "whole image"
            object.__setattr__(self, "tile", None)
        if self.tile_overlap < 0:
            raise GtasrError(f"--tile-overlap must not be negative, not {self.tile_overlap}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise GtasrError(f"--max-pixels must be positive, not {self.max_pixels}")
        separators = {"/", "\\", "\0", os.sep, os.altsep} - {None}
        if any(char in self.suffix for char in separators):
            raise GtasrError(f"--suffix must not contain a path separator, not {self.suffix!r}")
        if self.method == "model":
            tile, overlap = seamless_tiling(self.tile, self.tile_overlap)
            object.__setattr__(self, "tile", tile)
            object.__setattr__(self, "tile_overlap", overlap)


@dataclass(frozen=True)
class Record:
    """What became of one input: a line of ``--manifest``.

    ``status`` is ``written``, ``skipped`` (the output existed) or ``failed`` (``error``
    says why); ``output`` is None when no output name could be given.
    """

    input: str
    output: str | None
    status: str
    seconds: float
    error: str | None = None


RecordSink = Callable[[Record], None]
"""Hears the :class:`Record` of every input as soon as it is known (``--manifest``)."""


@dataclass
class BatchResult:
    """Counts of one batch run, and the one-line error of each failed file."""

    written: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, record: Record) -> None:
        """Count ``record``; a failure's error is logged here, once, wherever it happened."""
        if record.status == "written":
            self.written += 1
        elif record.status == "skipped":
            self.skipped += 1
        else:
            _fail(self, record.error or f"{record.input}: failed")


def output_path(source: Path, options: UpscaleOptions, has_alpha: bool = False) -> Path:
    """``OUT_DIR/<stem><suffix>.<ext>``: PNG for ``auto`` and whenever JPEG would lose alpha."""
    ext = "png" if options.ext == "auto" or (has_alpha and options.ext == "jpg") else options.ext
    return options.out_dir / f"{source.stem}{options.suffix}.{ext}"


def upscale_image(
    image: Image,
    options: UpscaleOptions,
    upscaler: Upscaler | None,
    on_tile: TileProgress | None = None,
    seed: int | None = None,
) -> Image:
    """The x4 (or ``outscale``) version of ``image`` by the chosen method.

    ``on_tile(done, total)`` follows the model's tiles (the baselines have none).
    ``seed`` is the noise seed (default ``options.seed``; a batch passes each file's
    :func:`~gtasr.infer.noise.image_seed`).
    """
    width = max(1, round(image.width * options.outscale))
    height = max(1, round(image.height * options.outscale))
    if options.method != "model":
        rgb = resize(image.rgb, width, height, options.method, image.bit_depth)
        alpha = None
        if image.alpha is not None:
            alpha = resize(image.alpha, width, height, options.method, image.bit_depth)
    else:
        if upscaler is None:
            raise ValueError("method 'model' needs an Upscaler")
        rgb = upscaler.upscale_rgb(
            image.rgb,
            seed=options.seed if seed is None else seed,
            tile=options.tile,
            tile_overlap=options.tile_overlap,
            steps=options.steps,
            on_tile=on_tile,
        )
        alpha = None if image.alpha is None else upscale_alpha(image.alpha, upscaler.scale)
        if (width, height) != (rgb.shape[1], rgb.shape[0]):
            rgb = resize(rgb, width, height, "lanczos", 16)
            if alpha is not None:
                alpha = resize(alpha, width, height, "lanczos", 16)
    return Image(
        rgb=rgb,
        alpha=alpha,
        grayscale=image.grayscale,
        bit_depth=image.bit_depth,
        source_format=image.source_format,
    )


def _already_there(
    source: Path, target: Path, options: UpscaleOptions, claimed: dict[Path, Path]
) -> bool:
    """True when ``target`` exists and may not be replaced; an error when another input of
    this run has it (written or skipped)."""
    if target in claimed:
        raise InputError(source, f"same output name {target.name} as {claimed[target]}")
    if target.exists() and not options.overwrite:
        log.info("%s: skipped, %s exists (use --overwrite to replace it)", source, target)
        claimed[target] = source  # a later input of this name is a collision, not a skip
        return True
    return False


def _refuse_replacing_an_input(source: Path, target: Path, inputs: frozenset[Path]) -> None:
    """An output may never replace an input (``-o`` equal to the input folder)."""
    real = target.resolve()
    if real == source.resolve():
        raise InputError(source, "its output would replace it; choose another -o or a --suffix")
    if real in inputs:
        raise InputError(source, f"its output {target} would replace another input")


def separate_outputs(
    sources: list[Path],
    options: UpscaleOptions,
    real: Callable[[Path], PurePath] = Path.resolve,
) -> list[Path]:
    """``sources`` without the files that are another source's output in this run.

    With ``-o`` equal to an input folder and a ``--suffix`` or another ``--ext``, a rerun
    lists the outputs of the first run beside their inputs: those are never read again.
    A file that would be its own output (same name and format) is an original, not an
    output, and stays an input (which :func:`process_one` then refuses to write over).
    ``real`` gives the path that two names of one file share (object storage has no links:
    there the name itself).
    """
    producers: dict[PurePath, Path] = {}
    for source in sources:
        alpha_kinds = (False, True) if source.suffix.lower() in _ALPHA_SUFFIXES else (False,)
        for alpha in alpha_kinds:
            producers.setdefault(real(output_path(source, options, alpha)), source)
    kept = []
    for source in sources:
        here = real(source)
        producer = producers.get(here)
        if producer not in (None, source) and real(output_path(source, options)) != here:
            log.info("%s: the output of %s in this run, not read as an input", source, producer)
            continue
        kept.append(source)
    return kept


def plan_output(
    source: Path, options: UpscaleOptions, claimed: dict[Path, Path], inputs: frozenset[Path]
) -> tuple[Path, bool]:
    """The output name of ``source`` before reading it, and whether it exists to be skipped.

    Raises :class:`InputError` when the output would replace an input or is another
    input's output in this run (``claimed``: output -> input).
    """
    planned = output_path(source, options)
    _refuse_replacing_an_input(source, planned, frozenset())
    if _already_there(source, planned, options, claimed):
        return planned, True
    _refuse_replacing_an_input(source, planned, inputs)
    return planned, False


def process_one(
    source: Path,
    options: UpscaleOptions,
    upscaler: Upscaler | None,
    claimed: dict[Path, Path],
    inputs: frozenset[Path] = frozenset(),
    on_tile: TileProgress | None = None,
    name: str | None = None,
) -> tuple[str, Path]:
    """Upscale one file; returns ``"written"`` or ``"skipped"`` and the output, raises on failure.

    ``inputs`` (resolved paths of the run's inputs) are never written over. ``name`` is
    the file's path relative to its input root, which seeds its noise (default: its name).
    """
    planned, exists = plan_output(source, options, claimed, inputs)
    if exists:
        return "skipped", planned
    image = read_image(source, max_pixels=options.max_pixels)
    target = output_path(source, options, has_alpha=image.alpha is not None)
    if target != planned:
        _refuse_replacing_an_input(source, target, frozenset())
        if _already_there(source, target, options, claimed):
            return "skipped", target
        _refuse_replacing_an_input(source, target, inputs)
    claimed[target] = source
    seed = image_seed(options.seed, source.name if name is None else name)
    save_image(target, upscale_image(image, options, upscaler, on_tile, seed), options.quality)
    return "written", target


def upscale_file(
    source: Path,
    options: UpscaleOptions,
    upscaler: Upscaler | None,
    *,
    name: str | None = None,
    claimed: dict[Path, Path] | None = None,
    inputs: frozenset[Path] = frozenset(),
    on_tile: TileProgress | None = None,
) -> Record:
    """:func:`process_one` with its problem caught: the :class:`Record` of ``source``.

    A file's own problem (unreadable, too large, out of memory) becomes a failed record
    with a one-line error; anything else (a bug, Ctrl-C, what ``on_tile`` raises) propagates.
    """
    start = time.perf_counter()
    output: Path | None = None
    try:
        output = output_path(source, options)
        status, output = process_one(
            source, options, upscaler, {} if claimed is None else claimed, inputs, on_tile, name
        )
    except GtasrError as error:
        message = str(error) if isinstance(error, FileError) else f"{source}: {error}"
        return _failed(source, output, start, message)
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        return _failed(
            source, output, start, f"{source}: out of memory; {memory_tip(options, source)}"
        )
    return Record(str(source), str(output), status, time.perf_counter() - start)


def _failed(source: Path, output: Path | None, start: float, message: str) -> Record:
    seconds = time.perf_counter() - start
    output_name = None if output is None else str(output)
    return Record(str(source), output_name, "failed", seconds, one_line(message))


def save_image(target: Path, image: Image, quality: int = 95) -> None:
    """Write ``image`` atomically, keeping alpha, grayscale and 16 bits where the format can."""
    write_image(
        target,
        image.rgb,
        alpha=image.alpha,
        grayscale=image.grayscale,
        bit_depth=image.bit_depth,
        quality=quality,
    )


def process_files(
    sources: list[Path],
    options: UpscaleOptions,
    upscaler: Upscaler | None,
    on_tile: TileProgress | None = None,
    *,
    names: Mapping[Path, str] | None = None,
    on_record: RecordSink | None = None,
) -> BatchResult:
    """Upscale every file in ``sources`` with a progress bar; problems are logged per file.

    ``on_tile(done, total)`` follows each file's tiles; what it raises stops the batch.
    ``names`` gives each source's path relative to its input root (which seeds its
    noise; default: its file name); ``on_record`` hears every file's :class:`Record`.
    """
    result = BatchResult()
    claimed: dict[Path, Path] = {}
    sources = separate_outputs(sources, options)
    inputs = frozenset(source.resolve() for source in sources)
    with logging_redirect_tqdm():
        for source in tqdm(sources, desc="upscale", unit="image", disable=None):
            name = None if names is None else names.get(source)
            record = upscale_file(
                source,
                options,
                upscaler,
                name=name,
                claimed=claimed,
                inputs=inputs,
                on_tile=on_tile,
            )
            result.add(record)
            if on_record is not None:
                on_record(record)
    return result


CANVAS_BYTES_PER_PIXEL = 3 * 4 * 2
"""Bytes per output pixel that stay whatever the tile: the float32 RGB canvas and the
blending weights or the copy written out."""


def memory_tip(options: UpscaleOptions, source: Path | None = None) -> str:
    """What to change when an image did not fit in memory with ``options``.

    A smaller tile only helps while the output canvas itself fits: when the canvas
    alone needs over half of this machine's memory, the advice says so instead.
    """
    canvas = _canvas_bytes(source, options.outscale) if source is not None else None
    memory = physical_memory()
    if canvas is not None and memory is not None and canvas > memory / 2:
        return (
            f"the {options.outscale:g}x output alone needs about {canvas / 2**30:.3g} GB of "
            f"this machine's {memory / 2**30:.3g} GB; use a smaller input or --outscale"
        )
    if options.outscale > 4:
        return f"the output at --outscale {options.outscale:g} is too large; try a smaller one"
    if options.method == "model":
        return "try a smaller --tile (for example --tile 256)"
    return "the image is too large for this machine"


def _canvas_bytes(source: Path, outscale: float) -> float | None:
    """Memory of the output canvas of ``source`` (from its header), or None if unreadable."""
    import PIL.Image

    try:
        with PIL.Image.open(source) as pil:
            width, height = pil.size
    except Exception:
        return None
    return width * height * outscale**2 * CANVAS_BYTES_PER_PIXEL


def physical_memory() -> int | None:
    """Bytes of memory of this machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _fail(result: BatchResult, message: str) -> None:
    message = one_line(message)
    log.error("%s", message)
    result.failed += 1
    result.errors.append(message)


def image_size(values: np.ndarray) -> str:
    """``WxH`` of an H x W [x C] array, for messages."""
    return f"{values.shape[1]}x{values.shape[0]}"
