"""The grammar of all commands: -o/--output, --overwrite, --device, old flag names, exit codes."""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import gtasr
from gtasr.cli import build_parser, main

SAMPLE = Path(gtasr.__file__).parent / "assets" / "sample.png"

WRITERS = {  # command -> does -o name a folder?
    "upscale": True,
    "demo": True,
    "export-onnx": False,
    "convert": False,
    "evaluate": False,
    "drift": True,
    "decoupling": True,
    "compare-grid": False,
    "make-testset": True,
    "fetch-photos": True,
    "fetch-weights": True,
    "train": True,
}
DEVICE_USERS = ("upscale", "demo", "evaluate", "drift", "decoupling", "train", "serve")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {name: action for action in parser._actions for name in action.option_strings}


def test_every_command_that_writes_takes_output_and_overwrite() -> None:
    commands = _subparsers()
    assert set(WRITERS) | {"info"} <= set(commands)
    for name, folder in WRITERS.items():
        options = _options(commands[name])
        output = options.get("-o")
        assert output is not None and options["--output"] is output, name
        assert output.metavar == ("DIR" if folder else "FILE"), name
        assert ("a folder" in output.help) == folder, name
        assert "--overwrite" in options, name
    for name in DEVICE_USERS:
        assert "mps" in _options(commands[name])["--device"].help, name


def test_the_api_and_the_command_line_tile_alike() -> None:
    from gtasr.infer.upscaler import Upscaler

    api = inspect.signature(Upscaler.upscale).parameters["tile"].default
    assert _options(_subparsers()["upscale"])["--tile"].default == api == 512


def test_flags_of_earlier_versions_are_gone(capsys) -> None:
    with pytest.raises(SystemExit) as old:
        main(["evaluate", "--sr", "sr", "--json", "s.json"])
    assert old.value.code == 2
    assert "unrecognized arguments: --json" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as missing:
        main(["make-testset", "--hr", "photos"])
    assert missing.value.code == 2
    assert "-o/--output" in capsys.readouterr().err
    assert main([]) == 2


def test_verbose_shows_gtasr_debug_lines_but_not_the_libraries() -> None:
    """-v turns on gtasr's own debug log; PIL's per-chunk debug log would flood a run's stderr."""
    script = (
        "import logging\n"
        "from PIL import Image\n"
        "from gtasr.cli import main\n"
        "assert main(['-v', 'info', '--model', 'bundled']) == 0\n"
        "logging.getLogger('gtasr.probe').debug('gtasr debug line')\n"
        f"Image.open({str(SAMPLE)!r}).load()\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "gtasr debug line" in run.stderr
    assert "STREAM" not in run.stderr  # PIL.PngImagePlugin's debug output
