"""``gtasr serve`` refuses to start, with one clear line, when it cannot serve."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from gtasr.cli import build_parser, main


def test_without_gradio_serve_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    assert main(["serve", "--port", "1"]) == 2
    assert "gtasr serve needs Gradio: pip install 'gtasr[web]'" in caplog.text


def test_a_bad_model_file_stops_serve_before_it_listens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    missing = tmp_path / "missing.safetensors"
    assert main(["serve", "--model", str(missing), "--port", "1"]) == 2
    assert f"{missing}: model file not found" in caplog.text
    assert "temporary files" not in caplog.text  # never got as far as serving


def test_max_pixels_must_be_positive(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["serve", "--max-pixels", "0", "--port", "1"]) == 2
    assert "--max-pixels must be positive, not 0" in caplog.text


def test_serve_listens_on_this_machine_only_by_default() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.model) == ("127.0.0.1", 7860, [])


def test_the_page_bounds_what_any_visitor_can_ask_by_default() -> None:
    """Anyone who reaches the page can start a job: 16 MP and 50 MB uploads unless the
    operator says otherwise (the command line has no such default)."""
    args = build_parser().parse_args(["serve"])
    assert (args.max_pixels, args.max_upload_mb) == (16_000_000, 50)
    assert build_parser().parse_args(["upscale", "x.png", "-o", "out"]).max_pixels is None


def test_max_upload_must_be_positive(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["serve", "--max-upload-mb", "0", "--port", "1"]) == 2
    assert "--max-upload-mb must be positive, not 0" in caplog.text
