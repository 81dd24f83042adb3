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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from gtasr.errors import GtasrError, InputError, is_out_of_memory
from gtasr.infer.backends import PRECISIONS
from gtasr.infer.batch import UpscaleOptions
from gtasr.infer.upscaler import DEFAULT_TILE
from gtasr.web.jobs import JobFolders, ModelCatalog, compare, upscale_many

log = logging.getLogger(__name__)

QUEUE = "upscale"
"""The concurrency group of both tabs: one slot, so one job at a time."""

INTRO = (
    "# gtasr: one-step x4 super-resolution\n"
    "Drop, paste or choose an image and press **Upscale**. Drag the slider to compare "
    "bicubic x4 (left) with the model (right). The download is the full-resolution PNG, "
    "with transparency and 16-bit depth kept."
)


def build_page(catalog: ModelCatalog, jobs: JobFolders, max_pixels: int | None) -> gr.Blocks:
    """The page over ``catalog``'s models, writing into ``jobs`` folders."""
    with gr.Blocks(title="gtasr", analytics_enabled=False, delete_cache=(1800, 3600)) as page:
        gr.Markdown(INTRO)
        with gr.Row():
            model = gr.Dropdown(catalog.labels, value=catalog.labels[0], label="Model")
            precision = gr.Dropdown(list(PRECISIONS), value=catalog.precision, label="Precision")
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
        with gr.Tab("Image"), gr.Row():
            with gr.Column():
                image = gr.Image(
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard"],
                    label="Input",
                    elem_id="input-image",
                )
                button = gr.Button("Upscale", variant="primary", elem_id="upscale-button")
            with gr.Column():
                slider = gr.ImageSlider(
                    type="filepath",
                    format="png",
                    interactive=False,
                    label="Before/after: bicubic x4 | gtasr x4",
                    elem_id="result-slider",
                )
                info = gr.Markdown(label="Summary", elem_id="result-info")
                download = gr.File(label="Full-resolution PNG", elem_id="result-file")
        with gr.Tab("Batch"):
            files = gr.File(file_count="multiple", type="filepath", label="Images")
            batch_button = gr.Button("Upscale all", variant="primary", elem_id="batch-button")
            summary = gr.Markdown(label="Summary", elem_id="batch-summary")
            archive = gr.File(label="Results (zip)", elem_id="batch-file")

        actions = PageActions(catalog, jobs, max_pixels)
        button.click(
            actions.upscale,
            inputs=[image, *settings],
            outputs=[slider, download, info],
            api_name="upscale",
            preprocess=False,
            concurrency_id=QUEUE,
            concurrency_limit=1,
        )
        batch_button.click(
            actions.upscale_batch,
            inputs=[files, *settings],
            outputs=[archive, summary],
            api_name="upscale_batch",
            preprocess=False,
            concurrency_id=QUEUE,
            concurrency_limit=1,
        )
    return page


class PageActions:
    """What the page's buttons (and the API endpoints) run: gather settings, call the jobs."""

    def __init__(self, catalog: ModelCatalog, jobs: JobFolders, max_pixels: int | None) -> None:
        self.catalog = catalog
        self.jobs = jobs
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
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for it)
    ) -> tuple[tuple[str, str], str, str]:
        """The page's Upscale: slider pair (bicubic, gtasr), the PNG to download, a summary."""
        if not image:
            raise _refusal("Choose an image first.")
        with self._logged("upscale"), _errors_on_page():
            options = _options(self.jobs.new(), seed, steps, tile, self.max_pixels)
            done = compare(
                _uploaded(image),
                self.catalog.get(model, precision),
                options,
                on_tile=lambda i, n: progress((i, n), desc="Upscaling", unit="tiles"),
            )
        (width, height), (out_width, out_height) = done.input_size, done.output_size
        tiles = f"{done.tiles} tile{'s' if done.tiles != 1 else ''}"
        text = (
            f"{width}x{height} → {out_width}x{out_height} in **{done.seconds:.2f} s** "
            f"({model}, {precision}, seed {options.seed}, {options.steps} step(s), {tiles})"
        )
        return (str(done.bicubic), str(done.result)), str(done.result), text

    def upscale_batch(
        self,
        files: list[dict[str, Any]] | None,
        model: str,
        seed: Any,
        steps: Any,
        tile: Any,
        precision: str,
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
    ) -> tuple[str | None, str]:
        """The Batch tab: the zip of the results and a summary naming the failed files."""
        if not files:
            raise _refusal("Choose some images first.")
        with self._logged("upscale_batch"), _errors_on_page():
            sources = [_uploaded(file) for file in files]
            options = _options(self.jobs.new() / "x4", seed, steps, tile, self.max_pixels)
            zipped, result = upscale_many(sources, self.catalog.get(model, precision), options)
        lines = [f"{result.written} upscaled, {result.failed} failed."]
        lines += [f"- {_without_folders(error, sources)}" for error in result.errors]
        if zipped is None:
            raise _refusal(" ".join(lines))
        return str(zipped), "\n".join(lines)

    @contextlib.contextmanager
    def _logged(self, endpoint: str) -> Iterator[None]:
        """One server-log line when a job starts and one when it ends, numbered.

        The operator's record of what ran and how long it took; the lines also
        show that the queue runs one job at a time.
        """
        number, started = next(self._numbers), time.perf_counter()
        log.info("job %d (%s) started", number, endpoint)
        outcome = "failed"
        try:
            yield
            outcome = "finished"
        finally:
            log.info(
                "job %d (%s) %s after %.2f s",
                number,
                endpoint,
                outcome,
                time.perf_counter() - started,
            )


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
    except InputError as error:
        raise _refusal(f"{Path(error.path).name}: {error.problem}") from error
    except GtasrError as error:
        raise _refusal(str(error)) from error
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        raise _refusal("Out of memory: choose a smaller tile size.") from error


def _refusal(message: str) -> gr.Error:
    """The error shown on the page; the server's log gets the same line, not a traceback."""
    log.warning("refused: %s", message)
    return gr.Error(message, print_exception=False)


def _without_folders(message: str, sources: list[Path]) -> str:
    """A batch error with the server's upload folders cut from the file names."""
    for source in sources:
        message = message.replace(f"{source.parent}{os.sep}", "")
    return message
