"""``--manifest FILE``: one JSON line per input of ``gtasr upscale``, as the run goes.

Each line holds ``input``, ``output``, ``status`` (written, skipped or failed),
``seconds`` and ``error`` (null unless failed). Lines are written as the inputs are
done, into a temporary file beside FILE that takes FILE's name when the run ends
(:func:`gtasr.fileio.atomic_path`), so FILE is always a whole run's record; each run
replaces it. A run that is stopped (Ctrl-C, a crash) leaves what it recorded as
``FILE.partial``, so that a rerun, which does only what is missing, can be told from
the record of the stopped one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from gtasr.fileio import atomic_path
from gtasr.infer.batch import Record, RecordSink

log = logging.getLogger(__name__)


@contextlib.contextmanager
def manifest(path: str | os.PathLike[str] | None) -> Iterator[RecordSink]:
    """A sink that writes each :class:`Record` as a JSON line to ``path`` (None: nowhere)."""
    if path is None:
        yield lambda record: None
        return
    partial = Path(path).with_name(f"{Path(path).name}.partial")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:

        def write(record: Record) -> None:
            handle.write(json.dumps(asdict(record)) + "\n")

        try:
            yield write
        except BaseException:
            handle.flush()
            os.replace(tmp, partial)
            log.warning("the run stopped; what it recorded is in %s", partial)
            raise
