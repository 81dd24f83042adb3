"""The command-line grammar every gtasr command shares.

- ``-o/--output``: where a command writes. A folder when it writes several files, a file when
  it writes one; each command's ``--help`` says which.
- ``--overwrite``: replace existing outputs. Without it nothing is replaced: ``upscale`` skips
  the inputs whose output exists, the other commands stop before writing anything
  (:func:`gtasr.fileio.refuse_existing`).
- ``--device``: auto, cpu, cuda, cuda:N or mps (:func:`gtasr.devices.resolve_device`).
- Exit codes: :data:`EXIT_OK` when everything was done, :data:`EXIT_SOME_FAILED` when some
  inputs failed (each named in a one-line error) and the others were processed,
  :data:`EXIT_FATAL` for a usage error or an error that stopped the command,
  :data:`EXIT_INTERRUPTED` and :data:`EXIT_TERMINATED` when Ctrl-C or SIGTERM stopped it
  (the shell's 128 + signal number; ``train`` exits so after writing its checkpoint).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gtasr.choices import BACKEND_NAMES, MAX_SEED, WEIGHT_KEYS
from gtasr.devices import DEVICE_HELP
from gtasr.objectstore import is_uri

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_FATAL = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def add_output(
    parser: argparse.ArgumentParser,
    what: str,
    *,
    folder: bool,
    required: bool = True,
    default: Path | None = None,
    uri: bool = False,
) -> None:
    """``-o/--output``: a folder or a file, as ``folder`` says; with ``uri``, a URI such as
    ``s3://bucket/prefix`` is kept as the string it is (a :class:`Path` would merge its
    slashes)."""
    kind = "a folder: the command writes several files" if folder else "a file"
    parser.add_argument(
        "-o",
        "--output",
        type=path_or_uri if uri else Path,
        default=default,
        required=required,
        metavar="DIR" if folder else "FILE",
        help=f"{what} ({kind})" + (f"; default {default}" if default is not None else ""),
    )


def path_or_uri(text: str) -> Path | str:
    """A local path as a :class:`Path`, a URI (:func:`gtasr.objectstore.is_uri`) as given."""
    return text if is_uri(text) else Path(text)


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: replace existing outputs (refused without it)."""
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (default: keep them)"
    )


def add_device(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    """``--device`` with the values :func:`gtasr.devices.resolve_device` understands."""
    where = f"default: {default}" if default is not None else "default: the config's train.device"
    parser.add_argument("--device", default=default, help=f"{DEVICE_HELP} ({where})")


def add_backend(parser: argparse.ArgumentParser) -> None:
    """``--backend``: what runs the network (:func:`gtasr.infer.backends.choose_backend`)."""
    parser.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        default="auto",
        help="what runs the network (auto: OpenVINO on the CPU where it is installed, else torch)",
    )


def seed(text: str) -> int:
    """argparse type of ``--seed``: a whole number within 0..:data:`MAX_SEED`."""
    value = _whole(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be within 0..2**63-1, not {text}")
    return value


def non_negative(text: str) -> float:
    """argparse type of an amount such as ``--ray-gpus-per-worker``: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def ray_address(text: str) -> str:
    """argparse type of ``--ray ADDRESS``: what ``ray.init`` takes, except a Ray Client
    address (``ray://``), over which Ray Data's streaming executor does not run."""
    if text.startswith("ray://"):
        raise argparse.ArgumentTypeError(
            f"{text}: Ray Data does not run over Ray Client (ray://); on a machine of the "
            "cluster give --ray auto or --ray HEAD:6379"
        )
    return text


def name_list(text: str) -> list[str]:
    """argparse type of a comma-separated list of names (``--images``, ``--packages``);
    spaces around a name and empty names are dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


def positive(text: str) -> int:
    """argparse type of a count that must be at least 1 (``--max-steps``, ``--count``)."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    """``--weights ema|raw``: which state dict of an authors' checkpoint to use."""
    parser.add_argument(
        "--weights",
        choices=tuple(WEIGHT_KEYS),
        default=None,
        help="authors' checkpoints: params_ema (ema, the default) or params (raw)",
    )
