"""Fixtures for the perceptual tests: the metrics (built once) and the fixed images."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from gtasr.perceptual import DISTS, LPIPS, WeightsNotFoundError


def _load_reference_images() -> ModuleType:
    path = Path(__file__).with_name("reference_images.py")
    spec = importlib.util.spec_from_file_location("gtasr_test_reference_images", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def reference_images() -> ModuleType:
    """The helper module that builds the fixed image pairs (shared with make_reference.py)."""
    return _load_reference_images()


def _build(factory):
    try:
        return factory()
    except WeightsNotFoundError as error:
        pytest.skip(f"perceptual weights not installed: {error}")


@pytest.fixture(scope="session")
def lpips_alex() -> LPIPS:
    return _build(lambda: LPIPS("alex"))


@pytest.fixture(scope="session")
def lpips_vgg() -> LPIPS:
    return _build(lambda: LPIPS("vgg"))


@pytest.fixture(scope="session")
def dists() -> DISTS:
    return _build(DISTS)


@pytest.fixture(autouse=True)
def _single_threaded(one_thread: None) -> None:
    """Every perceptual test runs with one intra-op thread (tests/conftest.py)."""
