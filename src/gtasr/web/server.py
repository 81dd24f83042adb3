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
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType, ModuleType

from gtasr.errors import GtasrError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def serve(
    models: Sequence[Path] = (),
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    device: str = "auto",
    precision: str = "fp32",
    max_pixels: int | None = None,
) -> None:
    """Serve the page until interrupted; returns once the temporary folder is gone."""
    from gtasr.web.jobs import JobFolders, ModelCatalog

    if max_pixels is not None and max_pixels < 1:
        raise GtasrError(f"--max-pixels must be positive, not {max_pixels}")
    catalog = ModelCatalog(models, device=device, precision=precision)
    catalog.load_all()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's requests to itself
    with tempfile.TemporaryDirectory(prefix="gtasr-serve-") as folder, _environment(Path(folder)):
        workdir = Path(folder)
        page_module = _import_page()  # after GRADIO_TEMP_DIR: some of Gradio reads it on import
        page = page_module.build_page(catalog, JobFolders(workdir / "jobs"), max_pixels)
        page.queue(default_concurrency_limit=1)
        log.info("models: %s; temporary files in %s", ", ".join(catalog.labels), workdir)
        with _sigterm_as_interrupt():
            try:
                page.launch(
                    server_name=host,
                    server_port=port,
                    ssr_mode=False,
                    mcp_server=False,
                    pwa=False,
                    enable_monitoring=False,
                )
            except OSError as error:
                log.debug("launch failed: %s", error)
                raise GtasrError(
                    f"cannot listen on {host}:{port} (port taken? choose another with --port)"
                ) from error
        log.info("stopped; removed %s", workdir)


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


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM stop the server like Ctrl-C, so the temporary folder is removed."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
