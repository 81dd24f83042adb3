"""Running the page: one temporary folder for everything, no analytics, a clean shutdown.

Every file the server writes (uploads, Gradio's cache, the results) lives in
one temporary folder that is removed when the server stops, on Ctrl-C and on
SIGTERM alike. Gradio is told not to send analytics or look for updates, and
its default theme serves its fonts itself, so the page needs no network
beyond the machine it runs on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING

from gtasr.errors import GtasrError
from gtasr.options import EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED

if TYPE_CHECKING:
    from gtasr.web.jobs import JobControl, JobFolders

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


PAGE_MAX_PIXELS = 16_000_000
"""The page's default pixel limit: any visitor can start a job, so the default keeps one
job to minutes and a few GB (a 3000x3000 upload took 7 minutes and 6 GB here)."""
PAGE_MAX_UPLOAD_MB = 50
STOP_WAIT_S = 60.0
"""How long a stopping server waits for the running job to reach its next tile."""


def serve(
    models: Sequence[Path] = (),
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    device: str = "auto",
    precision: str = "fp32",
    backend: str = "auto",
    max_pixels: int | None = PAGE_MAX_PIXELS,
    max_upload_mb: int = PAGE_MAX_UPLOAD_MB,
) -> int:
    """Serve the page until Ctrl-C or SIGTERM; returns the exit code once the temporary
    folder is gone: 0 when no job was running, 130 or 143 (128 + the signal) when one was
    and it was stopped at its next tile."""
    from gtasr.web.jobs import JobControl, JobFolders, ModelCatalog

    if max_pixels is not None and max_pixels < 1:
        raise GtasrError(f"--max-pixels must be positive, not {max_pixels}")
    if max_upload_mb < 1:
        raise GtasrError(f"--max-upload-mb must be positive, not {max_upload_mb}")
    catalog = ModelCatalog(models, device=device, precision=precision, backend=backend)
    catalog.load_all()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's requests to itself
    stop = _Stop()
    with tempfile.TemporaryDirectory(prefix="gtasr-serve-") as folder, _environment(Path(folder)):
        workdir = Path(folder)
        page_module = _import_page()  # after GRADIO_TEMP_DIR: some of Gradio reads it on import
        control = JobControl()
        jobs = JobFolders(workdir / "jobs")
        page = page_module.build_page(catalog, jobs, control, max_pixels)
        control.client_gone = lambda session: page_module.client_gone(page, session)
        page.queue(default_concurrency_limit=1)
        log.info("models: %s; temporary files in %s", ", ".join(catalog.labels), workdir)
        with stop.on_signals(control), _pruning(jobs):
            try:
                page.launch(
                    server_name=host,
                    server_port=port,
                    ssr_mode=False,
                    mcp_server=False,
                    pwa=False,
                    enable_monitoring=False,
                    max_file_size=f"{max_upload_mb}mb",
                    quiet=True,
                )
            except OSError as error:
                log.debug("launch failed: %s", error)
                raise GtasrError(
                    f"cannot listen on {host}:{port} (port taken? choose another with --port)"
                ) from error
            code = stop.exit_code(control)
        log.info("stopped; removed %s", workdir)
    return code


class _Stop:
    """Ctrl-C and SIGTERM: stop every job at its next tile, then let the server close."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.job_was_running = False

    @contextlib.contextmanager
    def on_signals(self, control: JobControl) -> Iterator[None]:
        def stop(signum: int, frame: FrameType | None) -> None:
            if self.signal is None:
                self.signal = signum
                self.job_was_running = not control.wait_idle(0)
                control.stop_all()
            raise KeyboardInterrupt

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def exit_code(self, control: JobControl) -> int:
        """Wait for a stopping job; 0, or 128 + the signal when a job was cut short."""
        if self.signal is None:
            return EXIT_OK
        control.stop_all()
        if not control.wait_idle(STOP_WAIT_S):
            log.warning("a job did not stop within %.0f s", STOP_WAIT_S)
        if not self.job_was_running:
            return EXIT_OK
        return EXIT_INTERRUPTED if self.signal == signal.SIGINT else EXIT_TERMINATED


@contextlib.contextmanager
def _pruning(jobs: JobFolders, every_s: float = 60.0) -> Iterator[None]:
    """Remove old job folders every ``every_s`` seconds while the server runs."""
    done = threading.Event()

    def prune() -> None:
        while not done.wait(every_s):
            jobs.prune()

    thread = threading.Thread(target=prune, name="gtasr-prune", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def _import_page() -> ModuleType:
    """:mod:`gtasr.web.page`, or a clear error when Gradio is not installed."""
    try:
        import gradio  # noqa: F401
    except ImportError as error:
        raise GtasrError("gtasr serve needs Gradio: pip install 'gtasr[web]'") from error
    from gtasr.web import page

    return page


@contextlib.contextmanager
def _environment(workdir: Path) -> Iterator[None]:
    """Point Gradio (and the matplotlib it imports) at ``workdir``, analytics off; then restore.

    Without this, Gradio keeps uploads in ``$TMPDIR/gradio`` and matplotlib
    writes a font cache under the home folder, both left behind at exit. A
    matplotlib folder the user chose is kept.
    """
    values = {"GRADIO_TEMP_DIR": str(workdir / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False"}
    if "MPLCONFIGDIR" not in os.environ:
        values["MPLCONFIGDIR"] = str(workdir / "matplotlib")
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
