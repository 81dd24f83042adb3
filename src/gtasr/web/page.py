"""The Gradio page of ``gtasr serve``: one image with a before/after slider, or a batch.

The page only gathers settings and shows results; the work is
:mod:`gtasr.web.jobs`. The events take their inputs as sent
(``preprocess=False``): an upload arrives as the path of the untouched file,
which gtasr decodes itself (16 bits, alpha, EXIF orientation, the pixel limit
checked from the header, a clear message for a bad file), where Gradio's
image preprocessing would open it with Pillow first.

Both tabs share the settings row and one queue slot, so one job runs at a
time and waiting visitors see their place. The single image is also the API
endpoint ``upscale`` (the image first, every other input defaulted), the
batch is ``upscale_batch``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from gtasr.choices import DEFAULT_TILE, PRECISION_NAMES
from gtasr.devices import release_memory
from gtasr.errors import GtasrError, InputError, is_out_of_memory
from gtasr.imageio import TooManyPixels
from gtasr.infer.batch import UpscaleOptions
from gtasr.web.jobs import (
    JobCancelled,
    JobControl,
    JobFolders,
    ModelCatalog,
    compare,
    upscale_many,
)

log = logging.getLogger(__name__)

CACHE_LIFETIME = (300, 600)
"""Gradio's cache (uploads, results as served) is swept every 5 minutes of files older than
10: a server that runs for weeks does not keep every visitor's images."""
QUEUE = "upscale"
"""The concurrency group of both tabs: one slot, so one job at a time."""

INTRO = (
    "# gtasr: one-step x4 super-resolution\n"
    "Drop, paste or choose an image and press **Upscale**. Drag the slider to compare "
    "bicubic x4 (left) with the model (right). The download is the full-resolution PNG, "
    "with transparency and 16-bit depth kept."
)


def build_page(
    catalog: ModelCatalog, jobs: JobFolders, control: JobControl, max_pixels: int | None
) -> gr.Blocks:
    """The page over ``catalog``'s models, writing into ``jobs`` folders; ``control``
    stops a job whose visitor pressed Cancel or left."""
    with gr.Blocks(title="gtasr", analytics_enabled=False, delete_cache=CACHE_LIFETIME) as page:
        gr.Markdown(INTRO)
        with gr.Row():
            model = gr.Dropdown(catalog.labels, value=catalog.labels[0], label="Model")
            precision = gr.Dropdown(
                list(PRECISION_NAMES), value=catalog.precision, label="Precision"
            )
            seed = gr.Number(0, precision=0, label="Seed")
            steps = gr.Slider(1, 8, value=1, step=1, precision=0, label="Steps")
            tile = gr.Slider(
                0,
                2048,
                value=DEFAULT_TILE,
                step=16,
                precision=0,
                label="Tile (LR pixels, 0: whole image)",
            )
        settings = [model, seed, steps, tile, precision]
        pressed = gr.State(None)
        with gr.Tab("Image"), gr.Row():
            with gr.Column():
                image = gr.Image(
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard"],
                    label="Input",
                    elem_id="input-image",
                )
                with gr.Row():
                    button = gr.Button("Upscale", variant="primary", elem_id="upscale-button")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel-button")
            with gr.Column():
                slider = gr.ImageSlider(
                    type="filepath",
                    format="png",
                    interactive=False,
                    label="Before/after: bicubic x4 | gtasr x4 (a preview of large results)",
                    elem_id="result-slider",
                )
                info = gr.Markdown(label="Summary", elem_id="result-info")
                download = gr.File(label="Full-resolution PNG", elem_id="result-file")
        with gr.Tab("Batch"):
            files = gr.File(file_count="multiple", type="filepath", label="Images")
            with gr.Row():
                batch_button = gr.Button("Upscale all", variant="primary", elem_id="batch-button")
                batch_cancel = gr.Button("Cancel", variant="stop", elem_id="batch-cancel-button")
            summary = gr.Markdown(label="Summary", elem_id="batch-summary")
            archive = gr.File(label="Results (zip)", elem_id="batch-file")

        actions = PageActions(catalog, jobs, control, max_pixels)
        for start, work, source, outputs, api_name in (
            (button, actions.upscale, image, [slider, download, info], "upscale"),
            (batch_button, actions.upscale_batch, files, [archive, summary], "upscale_batch"),
        ):
            start.click(
                _pressed(len(outputs)),
                outputs=[pressed, *outputs],
                queue=False,
                api_visibility="private",
            ).then(
                work,
                inputs=[source, *settings, pressed],
                outputs=outputs,
                api_name=api_name,
                preprocess=False,
                concurrency_id=QUEUE,
                concurrency_limit=1,
            )
        cancel.click(actions.cancel, outputs=[info], queue=False, api_name="cancel")
        batch_cancel.click(actions.cancel, outputs=[summary], queue=False, api_visibility="private")
    return page


def _pressed(results: int) -> Callable[[], tuple[Any, ...]]:
    """What pressing Upscale does at once: the time (the summary counts from here, queue
    included), and the ``results`` outputs cleared, the summary (the last) to an empty text,
    so that an error never sits on an earlier picture."""

    def press() -> tuple[Any, ...]:
        return (time.time(), *[None] * (results - 1), "")

    return press


class PageActions:
    """What the page's buttons (and the API endpoints) run: gather settings, call the jobs."""

    def __init__(
        self,
        catalog: ModelCatalog,
        jobs: JobFolders,
        control: JobControl,
        max_pixels: int | None,
    ) -> None:
        self.catalog = catalog
        self.jobs = jobs
        self.control = control
        self.max_pixels = max_pixels
        self._numbers = itertools.count(1)

    def upscale(
        self,
        image: dict[str, Any] | None,
        model: str,
        seed: Any,
        steps: Any,
        tile: Any,
        precision: str,
        pressed: float | None = None,
        request: gr.Request = None,  # type: ignore[assignment]  # Gradio fills it in
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for it)
    ) -> tuple[tuple[str, str], str, str]:
        """The page's Upscale: slider pair (bicubic, gtasr), the PNG to download, a summary."""
        if not image:
            raise _refusal("Choose an image first.")
        started = time.time() if pressed is None else float(pressed)
        with self._job("upscale", request) as (check, notes), _errors_on_page():

            def on_tile(done: int, total: int) -> None:
                check()
                progress((done, total), desc="Upscaling", unit="tiles")

            def on_phase(description: str) -> None:
                check()
                progress(None, desc=description)

            options = _options(self.jobs.new(), seed, steps, tile, self.max_pixels)
            done = compare(
                _uploaded(image),
                self.catalog.get(model, precision),
                options,
                on_tile=on_tile,
                on_phase=on_phase,
            )
        (width, height), (out_width, out_height) = done.input_size, done.output_size
        tiles = f"{done.tiles} tile{'s' if done.tiles != 1 else ''}"
        text = (
            f"{width}x{height} → {out_width}x{out_height} in **{time.time() - started:.2f} s** "
            f"from pressing Upscale to the result (the model {done.seconds:.2f} s; {model}, "
            f"{precision}, seed {options.seed}, {options.steps} step(s), {tiles})"
        )
        if done.preview != done.result:
            text += "\n\nThe slider shows a smaller preview; the download is full size."
        text += "".join(f"\n\nNote: {note}" for note in notes)
        return (str(done.bicubic), str(done.preview)), str(done.result), text

    def upscale_batch(
        self,
        files: list[dict[str, Any]] | None,
        model: str,
        seed: Any,
        steps: Any,
        tile: Any,
        precision: str,
        pressed: float | None = None,
        request: gr.Request = None,  # type: ignore[assignment]
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
    ) -> tuple[str | None, str]:
        """The Batch tab: the zip of the results and a summary naming the failed files."""
        if not files:
            raise _refusal("Choose some images first.")
        started = time.time() if pressed is None else float(pressed)
        with self._job("upscale_batch", request) as (check, notes), _errors_on_page():
            sources = [_uploaded(file) for file in files]
            options = _options(self.jobs.new() / "x4", seed, steps, tile, self.max_pixels)
            zipped, result = upscale_many(
                sources, self.catalog.get(model, precision), options, on_tile=lambda i, n: check()
            )
        lines = [
            f"{result.written} upscaled, {result.failed} failed, in "
            f"{time.time() - started:.2f} s from pressing Upscale all."
        ]
        lines += [f"- {_page_words(error, sources)}" for error in result.errors]
        lines += [f"Note: {note}" for note in notes]
        if zipped is None:
            raise _refusal(" ".join(lines))
        return str(zipped), "\n".join(lines)

    def cancel(self, request: gr.Request = None) -> str:  # type: ignore[assignment]
        """Cancel: the visitor's running job stops at its next tile."""
        if request is None or not self.control.cancel(request.session_hash):
            return "Nothing is running."
        return "Cancelling…"

    @contextlib.contextmanager
    def _job(
        self, endpoint: str, request: gr.Request | None
    ) -> Iterator[tuple[Callable[[], None], list[str]]]:
        """One job: numbered log lines at its start and end, its cancellation check, the
        warnings logged meanwhile (shown on the page), and memory given back after it.

        The log lines are the operator's record of what ran and how long it took; they
        also show that the queue runs one job at a time.
        """
        number, started = next(self._numbers), time.perf_counter()
        session = getattr(request, "session_hash", None) or f"job-{number}"
        log.info("job %d (%s) started", number, endpoint)
        outcome = "failed"
        try:
            with self.control.job(session) as check, _warnings_of_the_job() as notes:
                yield check, notes
            outcome = "finished"
        except JobCancelled as stopped:
            outcome = f"cancelled ({stopped})"
            raise _refusal(f"Stopped: {stopped}.") from None
        finally:
            log.info(
                "job %d (%s) %s after %.2f s",
                number,
                endpoint,
                outcome,
                time.perf_counter() - started,
            )
            release_memory()


def _uploaded(payload: dict[str, Any]) -> Path:
    """The server's copy of an uploaded file, from Gradio's file data."""
    path = payload.get("path") if isinstance(payload, dict) else None
    if not path:
        raise GtasrError("the upload did not arrive; try again")
    return Path(path)


def _whole(value: Any, name: str) -> int:
    """``value`` as an int, or an error naming the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise GtasrError(f"{name} must be a whole number, not {value!r}")
    return int(value)


def _options(
    folder: Path, seed: Any, steps: Any, tile: Any, max_pixels: int | None
) -> UpscaleOptions:
    """The command line's options from the page's numbers (checked as the CLI checks them)."""
    return UpscaleOptions(
        out_dir=folder,
        seed=_whole(seed, "seed"),
        steps=_whole(steps, "steps"),
        tile=_whole(tile, "tile"),
        max_pixels=max_pixels,
    )


@contextlib.contextmanager
def _errors_on_page() -> Iterator[None]:
    """Turn what the user can fix into a message on the page (the server goes on)."""
    try:
        yield
    except TooManyPixels as error:
        raise _refusal(_too_many_pixels(Path(error.path).name, error)) from error
    except InputError as error:
        raise _refusal(f"{Path(error.path).name}: {error.problem}") from error
    except GtasrError as error:
        raise _refusal(str(error)) from error
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        raise _refusal("Out of memory: choose a smaller tile size.") from error


def _too_many_pixels(name: str, error: TooManyPixels) -> str:
    width, height = error.size
    return (
        f"{name}: {width}x{height} is {width * height:,} pixels; this page takes images of "
        f"up to {error.limit:,} pixels"
    )


def _refusal(message: str) -> gr.Error:
    """The error shown on the page until closed; the server's log gets the same line, not a
    traceback."""
    log.warning("refused: %s", message)
    return gr.Error(message, duration=None, print_exception=False)


def _page_words(message: str, sources: list[Path]) -> str:
    """A batch error without the server's upload folders and the command line's flags."""
    for source in sources:
        message = message.replace(f"{source.parent}{os.sep}", "")
    limit = re.search(r"over the limit of (\d+) \(raise it with --max-pixels\)", message)
    if limit:
        message = message.replace(limit.group(0), f"over this page's limit of {limit.group(1)}")
    return message


@contextlib.contextmanager
def _warnings_of_the_job() -> Iterator[list[str]]:
    """Collect what gtasr warns of during a job (a tile raised to the seamless minimum, fp16
    on a CPU), so that the page shows it, not only the server's log."""
    notes: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno == logging.WARNING:  # errors reach the page by other ways
                notes.append(_SERVER_FOLDERS.sub(r"\1", record.getMessage()))

    handler = Collect(logging.WARNING)
    package = logging.getLogger("gtasr")
    package.addHandler(handler)
    try:
        yield notes
    finally:
        package.removeHandler(handler)
        notes[:] = [note for note in notes if not note.startswith("refused:")]


_SERVER_FOLDERS = re.compile(r"(?:/[^/\s]+)+/([^/\s]+)")
"""An absolute path on the server, of which a note keeps only the file name."""


def client_gone(page: gr.Blocks, session: str) -> bool:
    """Whether the visitor of ``session`` left while their job runs (closed the tab).

    Gradio marks a job whose event stream closed as no longer alive but lets its function
    run on; this reads that mark from the page's queue.
    """
    queue = getattr(page, "_queue", None)
    for running in getattr(queue, "active_jobs", None) or []:
        for event in running or []:
            if getattr(event, "session_hash", None) == session and not event.alive:
                return True
    return False
