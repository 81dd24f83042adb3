"""``gtasr serve`` (see gtasr.cli); Gradio is imported only when it runs."""

from __future__ import annotations

import argparse

from gtasr.choices import PRECISION_NAMES
from gtasr.hub import MODEL_SPEC_HELP, resolve_model
from gtasr.options import add_backend, add_device
from gtasr.web.server import DEFAULT_HOST, DEFAULT_PORT, PAGE_MAX_PIXELS, PAGE_MAX_UPLOAD_MB


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve``."""
    parser = subparsers.add_parser(
        "serve",
        help="a local web page to upscale images and compare them with bicubic",
        description=(
            "Serve a web page (Gradio) to upscale images, compare them with bicubic on a "
            "before/after slider and download the results; the page's upscale is also an API "
            "endpoint. Needs the web extra: pip install 'gtasr[web]'."
        ),
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="MODEL",
        help=f"a model to offer besides the bundled one (repeatable): {MODEL_SPEC_HELP}",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on ({DEFAULT_HOST})"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"({DEFAULT_PORT})")
    add_device(parser)
    parser.add_argument(
        "--precision", choices=PRECISION_NAMES, default="fp32", help="the page's default"
    )
    add_backend(parser)
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=PAGE_MAX_PIXELS,
        help=f"refuse larger images ({PAGE_MAX_PIXELS:,})",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=int,
        default=PAGE_MAX_UPLOAD_MB,
        help=f"refuse larger uploads ({PAGE_MAX_UPLOAD_MB} MB)",
    )
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """``gtasr serve``: runs until Ctrl-C or SIGTERM; exits 0, or 130/143 when a job was
    running (it stops at its next tile)."""
    from gtasr.web.server import serve

    return serve(
        [resolve_model(spec) for spec in args.model],
        host=args.host,
        port=args.port,
        device=args.device,
        precision=args.precision,
        backend=args.backend,
        max_pixels=args.max_pixels,
        max_upload_mb=args.max_upload_mb,
    )
