"""Upscaling one file whose input or output lies in object storage (a ``pyarrow.fs`` filesystem).

:func:`upscale_object` wraps :func:`gtasr.infer.batch.upscale_file`, so that a file read
from or written to object storage is named, seeded, checked and encoded exactly as a
local one: its bytes are copied under their own name into a private scratch folder and
upscaled there with every rule of the plain command, and its output, once encoded in
full there, is stored in one upload (:func:`gtasr.objectstore.write_object`), so no
partial object ever has the final name. An existing output is skipped before the input
is read. Records and errors name files by their URIs, never by the scratch copies.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from gtasr.errors import GtasrError, one_line
from gtasr.infer.batch import Record, UpscaleOptions, output_path, upscale_file
from gtasr.infer.upscaler import Upscaler
from gtasr.objectstore import exists, read_object, uri_of, write_object

if TYPE_CHECKING:
    import pyarrow.fs


def upscale_object(
    source: str,
    options: UpscaleOptions,
    upscaler: Upscaler | None,
    *,
    name: str | None = None,
    filesystem: pyarrow.fs.FileSystem | None = None,
    output_filesystem: pyarrow.fs.FileSystem | None = None,
) -> Record:
    """The :class:`~gtasr.infer.batch.Record` of ``source`` upscaled into ``options.out_dir``.

    ``source`` is a path of ``filesystem`` (a local path when None) and ``options.out_dir``
    a folder of ``output_filesystem`` (local when None). ``name`` is the file's path
    relative to its input root, which seeds its noise (default: its file name). A file's
    own problem becomes a failed record, as in :func:`~gtasr.infer.batch.upscale_file`.
    """
    start = time.perf_counter()
    label = source if filesystem is None else uri_of(filesystem, source)
    planned = output_path(Path(PurePosixPath(source).name), options)
    try:
        if not options.overwrite and _exists(planned, output_filesystem):
            record = Record(label, _shown(planned, output_filesystem), "skipped", 0.0)
        else:
            record = _upscale_in_scratch(
                source, label, planned, options, upscaler, name, filesystem, output_filesystem
            )
    except GtasrError as error:
        shown = _shown(planned, output_filesystem)
        record = Record(label, shown, "failed", 0.0, one_line(str(error)))
    return replace(record, seconds=time.perf_counter() - start)


def _upscale_in_scratch(
    source: str,
    label: str,
    planned: Path,
    options: UpscaleOptions,
    upscaler: Upscaler | None,
    name: str | None,
    filesystem: pyarrow.fs.FileSystem | None,
    output_filesystem: pyarrow.fs.FileSystem | None,
) -> Record:
    """:func:`~gtasr.infer.batch.upscale_file` on a scratch copy of ``source`` and (for object
    storage) into a scratch folder, then the output stored; the record names no scratch file."""
    with tempfile.TemporaryDirectory(prefix="gtasr-") as folder:
        local = Path(source)
        if filesystem is not None:
            local = Path(folder, "in", PurePosixPath(source).name)
            local.parent.mkdir()
            local.write_bytes(read_object(filesystem, source))
        scratch_names = {str(local): label}
        work = options
        if output_filesystem is not None:
            work = replace(options, out_dir=Path(folder, "out"), overwrite=True)
            scratch_names[str(work.out_dir)] = uri_of(output_filesystem, options.out_dir.as_posix())
        record = upscale_file(local, work, upscaler, name=name)
        if output_filesystem is not None and record.status == "written":
            record = _store(record, planned, options, output_filesystem)
    return _renamed(record, scratch_names)


def _store(
    record: Record, planned: Path, options: UpscaleOptions, filesystem: pyarrow.fs.FileSystem
) -> Record:
    """Upload the output that ``record`` wrote in the scratch folder to ``options.out_dir``.

    The output's name differs from ``planned`` only where the input's alpha made it a PNG
    (``--ext jpg``): that name is checked for an existing output now, as the plain command
    checks it once the image is read.
    """
    encoded = Path(str(record.output))
    target = options.out_dir / encoded.name
    shown = uri_of(filesystem, target.as_posix())
    if target != planned and not options.overwrite and exists(filesystem, target.as_posix()):
        return replace(record, output=shown, status="skipped")
    write_object(filesystem, target.as_posix(), encoded.read_bytes())
    return replace(record, output=shown)


def _renamed(record: Record, scratch_names: dict[str, str]) -> Record:
    """``record`` with its input, output and error naming the files as the user knows them."""
    output, error = record.output, record.error
    for scratch, known in scratch_names.items():
        output = output and output.replace(scratch, known)
        error = error and error.replace(scratch, known)
    shown_input = scratch_names.get(record.input, record.input)
    return replace(record, input=shown_input, output=output, error=error)


def _exists(path: Path, filesystem: pyarrow.fs.FileSystem | None) -> bool:
    return path.exists() if filesystem is None else exists(filesystem, path.as_posix())


def _shown(path: Path, filesystem: pyarrow.fs.FileSystem | None) -> str:
    return str(path) if filesystem is None else uri_of(filesystem, path.as_posix())
