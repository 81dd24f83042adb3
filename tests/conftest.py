"""Shared test fixtures, and the full-suite guard of CI.

``GTASR_FULL_SUITE=1`` (set by ``.ci/run``) means every test must run: missing evaluation
data fails the tests that need it instead of skipping them, and a session in which any test
was skipped or deselected fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FULL_SUITE = os.environ.get("GTASR_FULL_SUITE") == "1"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The evaluation data beside the checkout (never shipped in the package)."""
    if not SHARED_DATA.is_dir():
        message = f"evaluation data not found at {SHARED_DATA}"
        if FULL_SUITE:
            pytest.fail(f"{message} (GTASR_FULL_SUITE=1: the full suite needs it)")
        pytest.skip(message)
    return SHARED_DATA


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under GTASR_FULL_SUITE=1, a skipped or deselected test fails the session."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not FULL_SUITE or reporter is None or exitstatus != pytest.ExitCode.OK:
        return
    missed = {kind: len(reporter.stats.get(kind, [])) for kind in ("skipped", "deselected")}
    if any(missed.values()):
        reporter.write_line(f"GTASR_FULL_SUITE=1 but tests did not run: {missed}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def gtasr_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """gtasr's cache (ONNX exports, OpenVINO's compiled graphs) in a folder of this session,
    shared by its tests and by the commands they start, never the user's."""
    before = os.environ.get("GTASR_CACHE")
    folder = tmp_path_factory.mktemp("gtasr-cache")
    os.environ["GTASR_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("GTASR_CACHE", None)
    else:
        os.environ["GTASR_CACHE"] = before


@pytest.fixture(scope="session", autouse=True)
def auto_means_torch_in_this_process() -> Iterator[None]:
    """``--backend auto`` runs torch inside the test process; the tests that are about
    OpenVINO ask for it (or restore :func:`~gtasr.infer.backends.openvino_available`).

    Under ``auto`` every model file a test makes would first be exported to ONNX and
    compiled (seconds each); commands the tests start as processes (``gtasr serve``, Ray
    workers) still choose OpenVINO.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gtasr.infer.backends.openvino_available", lambda exports=True: False)
        yield


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread, restored afterwards.

    Small tensors cost more in thread synchronisation than the threads save, and on a
    busy shared 2-core machine spinning threads stall badly.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
