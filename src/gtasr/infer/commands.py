"""``gtasr upscale``, ``export-onnx`` and ``demo`` (see gtasr.cli)."""

from __future__ import annotations

import argparse
import importlib.resources
import logging
import os
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from gtasr.choices import (
    DEFAULT_TILE,
    DEFAULT_TILE_OVERLAP,
    OUTPUT_EXTENSIONS,
    PRECISION_NAMES,
    UPSCALE_METHODS,
)
from gtasr.errors import GtasrError, InputError
from gtasr.fileio import refuse_existing
from gtasr.hub import MODEL_SPEC_HELP, resolve_model
from gtasr.listing import input_root, list_images, relative_name
from gtasr.objectstore import is_local, is_uri, open_uri, shown, uri_of
from gtasr.objectstore import list_images as list_objects
from gtasr.options import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    add_backend,
    add_device,
    add_output,
    add_overwrite,
    add_weights_option,
    non_negative,
    positive,
    ray_address,
    seed,
)

if TYPE_CHECKING:
    import pyarrow.fs

    from gtasr.infer.batch import Record

log = logging.getLogger(__name__)

DEMO_SAMPLE = "sample.png"
DEMO_OUT = Path("out/demo")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``upscale``, ``export-onnx`` and ``demo``."""
    _register_upscale(subparsers)
    _register_export(subparsers)
    _register_demo(subparsers)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", metavar="MODEL", help=f"{MODEL_SPEC_HELP} (default: the bundled model)"
    )
    add_weights_option(parser)
    add_device(parser)
    parser.add_argument("--precision", choices=PRECISION_NAMES, default="fp32")
    parser.add_argument("--seed", type=seed, default=0, help="noise seed (default: 0)")


def _register_upscale(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upscale",
        help="x4 super-resolution of image files",
        description="Upscale images x4. INPUT may be files, folders or glob patterns; with "
        "--ray also URIs (s3://bucket/prefix, gs://..., file:///...). Exit "
        "code 0: all done; 1: some inputs failed (each named), the others were written; 2: "
        "usage or fatal error.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT")
    add_output(
        parser,
        "folder for the upscaled images, OUT/<stem>.<ext>; with --ray also a URI",
        folder=True,
        uri=True,
    )
    _add_model_options(parser)
    parser.add_argument(
        "--tile",
        type=int,
        default=DEFAULT_TILE,
        help=f"LR tile size in pixels, 0 = whole image ({DEFAULT_TILE})",
    )
    parser.add_argument(
        "--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP, help="LR pixels (32)"
    )
    parser.add_argument("--outscale", type=float, default=4.0, help="final scale (Lanczos)")
    parser.add_argument("--suffix", default="", help="appended to output file stems")
    parser.add_argument("--ext", choices=OUTPUT_EXTENSIONS, default="auto", help="output format")
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (95)")
    parser.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    add_overwrite(parser)
    add_backend(parser)
    parser.add_argument("--max-pixels", type=int, default=None, help="refuse larger inputs")
    parser.add_argument(
        "--method", choices=UPSCALE_METHODS, default="model", help="model, or a classical baseline"
    )
    parser.add_argument("--steps", type=int, default=1, help="sampling steps of the model (1)")
    _add_collection_options(parser)
    parser.set_defaults(func=run_upscale)


def _add_collection_options(parser: argparse.ArgumentParser) -> None:
    """``--manifest`` and the ``--ray`` options (docs/large-collections.md)."""
    parser.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="write one JSON line per input (input, output, status, seconds, error); "
        "replaced by each run",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        type=ray_address,
        metavar="ADDRESS",
        help="run on Ray Data: a local Ray without ADDRESS, else the cluster at ADDRESS "
        "(HEAD:6379, or auto on a machine of the cluster); pip install 'gtasr[ray]'",
    )
    parser.add_argument(
        "--ray-workers",
        type=positive,
        metavar="N",
        help="Ray workers, each holding the model once (default: the cluster's GPUs, "
        "or its CPUs / --ray-threads)",
    )
    parser.add_argument(
        "--ray-gpus-per-worker",
        type=non_negative,
        metavar="G",
        help="GPUs of each Ray worker (default: 1 on a cluster with GPUs, else 0)",
    )
    parser.add_argument(
        "--ray-threads",
        type=positive,
        default=1,
        metavar="T",
        help="CPU threads of each worker (1)",
    )


def _register_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export a model file to ONNX",
        description="Export f(x, sigma, y) with dynamic batch, height and width.",
    )
    parser.add_argument("--model", metavar="MODEL", required=True, help=MODEL_SPEC_HELP)
    add_output(parser, "the ONNX model to write, e.g. model.onnx", folder=False)
    add_overwrite(parser)
    add_weights_option(parser)
    parser.set_defaults(func=run_export_onnx)


def _register_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="upscale the bundled sample image", description="Upscale a sample image."
    )
    add_output(
        parser, "folder for the upscaled sample", folder=True, required=False, default=DEMO_OUT
    )
    add_overwrite(parser)
    _add_model_options(parser)
    parser.set_defaults(func=run_demo)


def _expand_inputs(
    inputs: list[str], recursive: bool, out_dir: Path
) -> tuple[list[Path], dict[Path, str], list[Record]]:
    """Expand every INPUT on its own, so one missing path does not stop the others.

    Returns the files, each file's path relative to its INPUT's root (which seeds its
    noise), and a failed :class:`Record` for each INPUT or folder that gave no files.
    An output folder inside an input folder is not listed: outputs are never inputs.
    """
    paths: list[Path] = []
    names: dict[Path, str] = {}
    seen: set[Path] = set()
    problems: list[Record] = []
    problem = partial(_note_problem, problems)

    for item in inputs:
        try:
            found = list_images([item], recursive, skip_under=out_dir, on_problem=problem)
        except InputError as error:
            problem(error)
            continue
        if not found:
            problem(InputError(item, "no images found"))
        root = input_root(item)
        for path in found:
            if path.resolve() not in seen:  # one file named twice is upscaled once
                seen.add(path.resolve())
                paths.append(path)
                names[path] = relative_name(path, root)
    return paths, names, problems


def _note_problem(problems: list[Record], error: InputError) -> None:
    """Log an INPUT that gave no files and keep its failed :class:`Record` for the manifest."""
    from gtasr.infer.batch import Record

    log.error("%s", error)
    problems.append(Record(error.path, None, "failed", 0.0, str(error)))


def _refuse_uris_without_ray(args: argparse.Namespace) -> None:
    """URIs are read and written by Ray workers only: without ``--ray``, one line says so."""
    uris = [item for item in [*args.inputs, args.output] if is_uri(item)]
    if uris and args.ray is None:
        raise GtasrError(f"{shown(uris[0])}: URIs as INPUT or -o need --ray")


def _output_folder(output: Path | str) -> tuple[pyarrow.fs.FileSystem | None, Path]:
    """The filesystem of ``-o`` (None: this machine's) and the folder's path on it."""
    if not is_uri(output):
        return None, Path(output)
    filesystem, path = open_uri(str(output))
    return (None if is_local(filesystem) else filesystem), Path(path)


def _expand_uris(
    inputs: list[str],
    recursive: bool,
    out_dir: Path,
    output_filesystem: pyarrow.fs.FileSystem | None,
) -> tuple[pyarrow.fs.FileSystem, list[Path], dict[Path, str], list[Record]]:
    """:func:`_expand_inputs` for INPUTs that are URIs; all must lie on one filesystem,
    which is returned first. The files are paths of that filesystem."""
    filesystems: list[pyarrow.fs.FileSystem] = []
    paths: list[Path] = []
    names: dict[Path, str] = {}
    problems: list[Record] = []
    for item in inputs:
        if not is_uri(item):
            raise GtasrError(f"{item}: INPUTs must be all URIs or all local paths, not both")
        filesystem, root = open_uri(item)
        if filesystems and not filesystem.equals(filesystems[0]):
            raise GtasrError(f"{shown(item)}: the URIs of one run must lie on one filesystem")
        filesystems.append(filesystem)
        skip = _output_inside(filesystem, out_dir, output_filesystem)
        try:
            found = list_objects(filesystem, root, recursive, skip_under=skip)
        except InputError as error:
            _note_problem(problems, error)
            continue
        if not found:
            _note_problem(problems, InputError(shown(item), "no images found"))
        for path, name in found:
            if Path(path) not in names:  # one file named twice is upscaled once
                paths.append(Path(path))
                names[Path(path)] = name
    return filesystems[0], paths, names, problems


def _output_inside(
    filesystem: pyarrow.fs.FileSystem,
    out_dir: Path,
    output_filesystem: pyarrow.fs.FileSystem | None,
) -> str | None:
    """The output folder as a path of ``filesystem``, when it lies there (so a listing leaves
    it out); None when the outputs go to another filesystem."""
    if output_filesystem is None:
        return os.path.abspath(out_dir) if is_local(filesystem) else None
    return out_dir.as_posix() if filesystem.equals(output_filesystem) else None


def run_upscale(args: argparse.Namespace) -> int:
    """``gtasr upscale``: exit 0 when every input was upscaled or skipped, 1 when some failed."""
    from gtasr.infer.batch import UpscaleOptions, process_files
    from gtasr.infer.manifest import manifest
    from gtasr.infer.upscaler import Upscaler

    _refuse_uris_without_ray(args)
    output_filesystem, out_dir = _output_folder(args.output)
    options = UpscaleOptions(
        out_dir=out_dir,
        method=args.method,
        seed=args.seed,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        steps=args.steps,
        outscale=args.outscale,
        suffix=args.suffix,
        ext=args.ext,
        quality=args.quality,
        overwrite=args.overwrite,
        max_pixels=args.max_pixels,
    )
    model = args.model
    if args.ray is not None:
        from gtasr.integrations.ray import require_ray

        require_ray()
        if options.method == "model":  # fetched once, here; every worker loads this file
            model = resolve_model(args.model).resolve()
    load = partial(
        Upscaler.from_pretrained,
        model,
        device=args.device,
        precision=args.precision,
        backend=args.backend,
        weights=args.weights,
    )
    filesystem = None
    if any(map(is_uri, args.inputs)):
        filesystem, paths, names, problems = _expand_uris(
            args.inputs, args.recursive, options.out_dir, output_filesystem
        )
    else:
        paths, names, problems = _expand_inputs(args.inputs, args.recursive, options.out_dir)
    with manifest(args.manifest) as record:
        for failure in problems:
            record(failure)
        if args.ray is not None:
            from gtasr.integrations.ray import RayPlan, upscale_on_ray

            plan = RayPlan(args.ray, args.ray_workers, args.ray_gpus_per_worker, args.ray_threads)
            result = upscale_on_ray(
                paths,
                names,
                options,
                load,
                plan,
                on_record=record,
                filesystem=filesystem,
                output_filesystem=output_filesystem,
            )
        else:
            upscaler = load() if options.method == "model" and paths else None
            result = process_files(paths, options, upscaler, names=names, on_record=record)
    result.failed += len(problems)
    log.info(
        "%d written, %d skipped, %d failed -> %s",
        result.written,
        result.skipped,
        result.failed,
        options.out_dir
        if output_filesystem is None
        else uri_of(output_filesystem, out_dir.as_posix()),
    )
    return EXIT_SOME_FAILED if result.failed else EXIT_OK


def run_export_onnx(args: argparse.Namespace) -> int:
    """``gtasr export-onnx``."""
    from gtasr.infer.onnx_export import export_onnx

    refuse_existing([args.output], args.overwrite)
    start = time.perf_counter()
    export_onnx(resolve_model(args.model), args.output, weights=args.weights)
    log.info("wrote %s in %.1f s", args.output, time.perf_counter() - start)
    return EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    """``gtasr demo``: upscale the bundled sample with the bundled (or the given) model."""
    from gtasr.imageio import read_image
    from gtasr.infer.batch import UpscaleOptions, image_size, process_files
    from gtasr.infer.upscaler import Upscaler

    options = UpscaleOptions(out_dir=args.output, seed=args.seed, overwrite=args.overwrite)
    start = time.perf_counter()
    upscaler = Upscaler.from_pretrained(
        args.model, device=args.device, precision=args.precision, weights=args.weights
    )
    resource = importlib.resources.files("gtasr") / "assets" / DEMO_SAMPLE
    with importlib.resources.as_file(resource) as sample:
        result = process_files([sample], options, upscaler)
        target = options.out_dir / f"{sample.stem}.png"
        source_size = image_size(read_image(sample).rgb)
    if result.failed:
        return EXIT_SOME_FAILED
    if result.skipped:
        return EXIT_OK
    seconds = time.perf_counter() - start
    log.info(
        "Upscaled the %s sample to %s (%s) with model %s in %.2f s.",
        source_size,
        target.resolve(),
        image_size(read_image(target).rgb),
        upscaler.source,
        seconds,
    )
    return EXIT_OK
