"""Upscaling collections on Ray Data: ``gtasr upscale --ray`` and :func:`upscale_dataset`.

A dataset of file paths streams through a pool of actors, each of which loads the model
once and then upscales every file it is given with :func:`gtasr.infer.batch.upscale_file`
(or :func:`gtasr.infer.remote.upscale_object` for object storage), the function the
one-process command calls: so ``--ray`` writes the files the plain command writes, with
the same names, noise, checks and atomic writes, and a worker that Ray restarts leaves no
partial file. Only small records come back to the driver (docs/large-collections.md).

This module imports Ray only inside its functions; ``pip install 'gtasr[ray]'``.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from gtasr.errors import GtasrError, one_line
from gtasr.infer.batch import (
    BatchResult,
    Record,
    RecordSink,
    UpscaleOptions,
    output_path,
    plan_output,
    separate_outputs,
    upscale_file,
)
from gtasr.infer.remote import upscale_object
from gtasr.infer.upscaler import Upscaler
from gtasr.objectstore import is_local, names_in, uri_of

if TYPE_CHECKING:
    import numpy as np
    import pyarrow.fs
    import ray.data

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'gtasr[ray]'"
BATCH_ROWS = 16
"""Files per actor call: their records return to the driver together."""
BLOCKS_PER_WORKER = 8
"""Blocks the driver cuts its file list into, per worker: enough to keep every worker busy
to the end of the run; the last blocks are small next to the whole."""
MAX_BLOCK_ROWS = 256
"""Most files in one block: what a worker retries after a crash, and what the driver holds
for a block in flight."""

Loader = Callable[[], Upscaler]
"""Called once in each worker to build its :class:`Upscaler` (it must pickle)."""


@dataclass(frozen=True)
class RayPlan:
    """Where a ``--ray`` run goes and how wide: ``address`` "" starts a local Ray;
    ``workers`` and ``gpus_per_worker`` None follow the cluster's resources."""

    address: str = ""
    workers: int | None = None
    gpus_per_worker: float | None = None
    threads: int = 1


def require_ray() -> None:
    """Stop with one line naming the extra when Ray Data is not installed."""
    try:
        import ray.data  # noqa: F401
    except ImportError as error:
        raise GtasrError(f"--ray needs Ray Data, which is not installed: {INSTALL_HINT}") from error


class _Worker:
    """A Ray Data actor: the model loaded once, then batches of files upscaled one by one.

    :func:`upscale_dataset` sets the class attributes on a subclass made for its run, so
    the actor has no constructor arguments that Ray would keep in its object store.
    """

    options: UpscaleOptions
    load: Loader
    threads: int
    filesystem: pyarrow.fs.FileSystem | None
    output_filesystem: pyarrow.fs.FileSystem | None

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(self.threads)
        self.upscaler = self.load() if self.options.method == "model" else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        sources = [str(source) for source in batch["input"]]
        names = [str(name) for name in batch["name"]] if "name" in batch else [None] * len(sources)
        records = [self._upscale(source, name) for source, name in zip(sources, names, strict=True)]
        return {
            "input": [record.input for record in records],
            "output": [record.output or "" for record in records],
            "status": [record.status for record in records],
            "seconds": [record.seconds for record in records],
            "error": [record.error or "" for record in records],
        }

    def _upscale(self, source: str, name: str | None) -> Record:
        if self.filesystem is None and self.output_filesystem is None:
            return upscale_file(Path(source), self.options, self.upscaler, name=name)
        return upscale_object(
            source,
            self.options,
            self.upscaler,
            name=name,
            filesystem=self.filesystem,
            output_filesystem=self.output_filesystem,
        )


def upscale_dataset(
    ds: ray.data.Dataset,
    options: UpscaleOptions,
    model: str | os.PathLike[str] | Loader | None = None,
    *,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    threads: int = 1,
    batch_size: int = BATCH_ROWS,
    filesystem: pyarrow.fs.FileSystem | None = None,
    output_filesystem: pyarrow.fs.FileSystem | None = None,
) -> ray.data.Dataset:
    """Upscale the files a Ray Dataset names; returns the lazy dataset of their records.

    ``ds`` has a column ``input`` (file paths every worker can read; absolute on a
    cluster) and optionally ``name`` (each file's path relative to its input root,
    which seeds its noise with ``options.seed``; default: its file name). ``model`` is a
    model file (None: the bundled model) or a function returning the :class:`Upscaler`,
    called once in each of the ``workers`` actors; each actor takes ``threads`` CPUs
    and ``gpus_per_worker`` GPUs. With ``filesystem`` (a ``pyarrow.fs`` filesystem, as
    Ray Data's readers take), ``input`` holds paths on it (``bucket/photos/a.png``);
    with ``output_filesystem``, ``options.out_dir`` is a folder on it
    (:mod:`gtasr.objectstore`). The result has one row per file: ``input``,
    ``output``, ``status`` (written, skipped or failed), ``seconds`` and ``error``
    ("" for none, as ``output`` when no name could be given). Nothing runs until the
    result is consumed (``iter_batches``, ``write_*``).
    """
    import ray.data

    load = model if callable(model) else partial(Upscaler.from_pretrained, model)
    if is_local(output_filesystem):  # local paths, written by gtasr's own atomic rule
        output_filesystem = None
        options = replace(options, out_dir=Path(os.path.abspath(options.out_dir)))
    settings = {
        "options": options,
        "load": staticmethod(load),
        "threads": threads,
        "filesystem": filesystem,
        "output_filesystem": output_filesystem,
    }
    worker = type(_Worker.__name__, (_Worker,), settings)
    return ds.map_batches(
        worker,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=threads,
        num_gpus=gpus_per_worker or None,
    )


def upscale_on_ray(
    sources: list[Path],
    names: dict[Path, str],
    options: UpscaleOptions,
    load: Loader,
    plan: RayPlan,
    on_record: RecordSink,
    *,
    filesystem: pyarrow.fs.FileSystem | None = None,
    output_filesystem: pyarrow.fs.FileSystem | None = None,
) -> BatchResult:
    """``gtasr upscale --ray``: the driver's side of :func:`upscale_dataset`.

    The driver names the outputs and skips existing ones before any file is read (so a
    rerun after a crash does only what is missing), refuses collisions as the plain
    command does, then streams the rest through the workers and counts their records.
    ``sources`` are paths of ``filesystem`` and ``options.out_dir`` a folder of
    ``output_filesystem`` where these are given (object storage), else local paths.
    """
    import ray

    result = BatchResult()

    def note(record: Record) -> None:
        result.add(record)
        on_record(record)

    if is_local(filesystem) and is_local(output_filesystem):
        inputs, input_names = _files_to_do(sources, names, options, note, filesystem)
    else:
        inputs, input_names = _objects_to_do(
            sources, names, options, note, filesystem, output_filesystem
        )
    if not inputs:
        return result
    _connect(plan.address)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = sys.stderr.isatty()
        workers, gpus = _width(plan)
        log.info("%d files to upscale on %d Ray workers", len(inputs), workers)
        ds = ray.data.from_arrow(_blocks(inputs, input_names, workers))
        done = upscale_dataset(
            ds,
            options,
            load,
            workers=workers,
            gpus_per_worker=gpus,
            threads=plan.threads,
            filesystem=filesystem,
            output_filesystem=output_filesystem,
        )
        for batch in done.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                note(_record(row))
    except Exception as error:
        user_error = _user_error(error)
        if user_error is None:
            raise
        raise user_error from error
    finally:
        ray.shutdown()
    return result


def _files_to_do(
    sources: list[Path],
    names: dict[Path, str],
    options: UpscaleOptions,
    note: RecordSink,
    filesystem: pyarrow.fs.FileSystem | None = None,
) -> tuple[list[str], list[str]]:
    """Absolute paths and names of the local files still to upscale; the others go to
    ``note``. ``filesystem`` is this machine's (``file://``) or None."""
    claimed: dict[Path, Path] = {}
    sources = separate_outputs(sources, options)
    run_inputs = frozenset(source.resolve() for source in sources)
    inputs, input_names = [], []
    for source in sources:
        shown = _shown(source, filesystem)
        try:
            planned, exists = plan_output(source, options, claimed, run_inputs)
        except GtasrError as error:
            note(Record(shown, None, "failed", 0.0, one_line(str(error))))
            continue
        if exists:
            note(Record(shown, str(planned), "skipped", 0.0))
            continue
        claimed[planned] = source  # a later input with this output name is a collision
        inputs.append(os.path.abspath(source))
        input_names.append(names.get(source, source.name))
    return inputs, input_names


def _objects_to_do(
    sources: list[Path],
    names: dict[Path, str],
    options: UpscaleOptions,
    note: RecordSink,
    filesystem: pyarrow.fs.FileSystem | None,
    output_filesystem: pyarrow.fs.FileSystem | None,
) -> tuple[list[str], list[str]]:
    """:func:`_files_to_do` where the inputs or the outputs are in object storage.

    Which outputs exist is read from one listing of the output folder. Inputs and
    outputs can meet only on one filesystem; there the outputs of an earlier run that
    lie beside their inputs are not read again, and no output may replace an input.
    """
    existing = None
    if output_filesystem is not None:
        existing = names_in(output_filesystem, options.out_dir.as_posix())
    shared = filesystem is not None and output_filesystem is not None
    if shared and filesystem.equals(output_filesystem):
        sources = separate_outputs(sources, options, real=PurePosixPath)
        run_inputs = frozenset(source.as_posix() for source in sources)
    else:
        run_inputs = frozenset()
    claimed: dict[Path, Path] = {}
    inputs, input_names = [], []
    for source in sources:
        shown = _shown(source, filesystem)
        planned = output_path(source, options)
        output = _shown(planned, output_filesystem)
        if planned in claimed:
            problem = f"same output name {planned.name} as {_shown(claimed[planned], filesystem)}"
            note(Record(shown, output, "failed", 0.0, f"{shown}: {problem}"))
            continue
        claimed[planned] = source
        there = planned.exists() if existing is None else planned.name in existing
        if there and not options.overwrite:
            note(Record(shown, output, "skipped", 0.0))
        elif planned.as_posix() in run_inputs:
            problem = "its output would replace an input; choose another -o or a --suffix"
            note(Record(shown, output, "failed", 0.0, f"{shown}: {problem}"))
        else:
            inputs.append(source.as_posix() if filesystem is not None else os.path.abspath(source))
            input_names.append(names.get(source, source.name))
    return inputs, input_names


def _shown(path: Path, filesystem: pyarrow.fs.FileSystem | None) -> str:
    """How records name ``path``: its URI on object storage, else as given."""
    return str(path) if filesystem is None else uri_of(filesystem, path.as_posix())


def _connect(address: str) -> None:
    """Start a local Ray (``address`` "") or join the cluster at ``address``."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(include_dashboard=False, **quiet)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        hint = ""
        if address and "RAY_AUTH_MODE" not in os.environ:
            hint = (
                " (a cluster with token authentication, the default of `ray start`, needs "
                "RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            )
        raise GtasrError(f"cannot start or join {where}: {one_line(str(error))}{hint}") from error


def _width(plan: RayPlan) -> tuple[int, float]:
    """Workers and GPUs per worker: as asked, else what the cluster holds."""
    import ray

    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    per_worker = plan.gpus_per_worker
    if per_worker is None:
        per_worker = 1.0 if gpus >= 1 else 0.0
    if per_worker < 0:
        raise GtasrError(f"--ray-gpus-per-worker must not be negative, not {per_worker:g}")
    workers = plan.workers
    if workers is None:
        by_gpu = int(gpus // per_worker) if per_worker else None
        workers = max(1, by_gpu if by_gpu is not None else int(cpus // plan.threads))
    if workers * plan.threads > cpus or workers * per_worker > gpus:
        raise GtasrError(
            f"{workers} Ray workers of {plan.threads} CPU and {per_worker:g} GPU each do not fit "
            f"the cluster's {cpus:g} CPUs and {gpus:g} GPUs (see --ray-workers, --ray-threads "
            "and --ray-gpus-per-worker)"
        )
    return workers, per_worker


def _blocks(inputs: list[str], input_names: list[str], workers: int) -> list[Any]:
    """The file list as Arrow tables of at most :data:`MAX_BLOCK_ROWS` rows (one block each)."""
    import pyarrow as pa

    rows = math.ceil(len(inputs) / (workers * BLOCKS_PER_WORKER))
    rows = max(1, min(MAX_BLOCK_ROWS, rows))
    return [
        pa.table({"input": inputs[start : start + rows], "name": input_names[start : start + rows]})
        for start in range(0, len(inputs), rows)
    ]


def _record(row: dict[str, Any]) -> Record:
    return Record(
        input=row["input"],
        output=row["output"] or None,
        status=row["status"],
        seconds=float(row["seconds"]),
        error=row["error"] or None,
    )


_GTASR_ERROR_LINE = re.compile(r"^gtasr\.errors\.\w+: (.+)$", re.MULTILINE)
"""The last line of a gtasr error's traceback as Ray quotes it in its own errors."""


def _user_error(error: BaseException) -> GtasrError | None:
    """The gtasr error inside what Ray raised (a worker could not load the model), if any.

    Ray passes some errors on as objects (``cause``) and others only as the text of the
    worker's traceback (an actor that died in its constructor), whose last gtasr line
    is then the message.
    """
    import ray.exceptions

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, GtasrError) and not isinstance(current, ray.exceptions.RayError):
            return GtasrError(str(current))
        quoted = _GTASR_ERROR_LINE.findall(str(current))
        if quoted:
            return GtasrError(quoted[-1])
        cause = getattr(current, "cause", None)
        if not isinstance(cause, BaseException):
            cause = current.__cause__ or current.__context__
        current = cause
    return None
