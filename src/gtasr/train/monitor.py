"""Where a run reports: metrics JSONL (+ TensorBoard when installed), stop requests.

``MetricsLog`` appends one JSON object per line to ``RUN/metrics.jsonl`` (a
NaN or infinite value as the string "nan" or "inf", :func:`gtasr.fileio.json_ready`);
after a resume, lines from steps beyond the checkpoint are dropped so the file
matches the weights. ``StopRequest`` turns Ctrl-C / SIGTERM into a flag the
loop checks between iterations, so the run can checkpoint and exit cleanly.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from gtasr.fileio import json_ready

log = logging.getLogger(__name__)


class MetricsLog:
    """Append-only metrics file, optionally mirrored to TensorBoard."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.debug("tensorboard is not installed: metrics go to %s only", self.path)
            else:
                self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (a resumed run repeats those steps)."""
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if int(record.get("step", 0)) <= step:
                kept.append(line)
        self.path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def write(self, step: int, kind: str, values: dict[str, Any]) -> None:
        """Record ``values`` of one kind ("train", "val", "summary") at ``step``."""
        record = json_ready({"step": step, "kind": kind, **values})
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, allow_nan=False) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        """Flush the TensorBoard writer."""
        if self.writer is not None:
            self.writer.close()


class StopRequest:
    """Catches SIGINT and SIGTERM while active; the loop polls :attr:`requested`."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.requested = name
        log.warning("%s received: saving a checkpoint and stopping", name)

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                break
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
