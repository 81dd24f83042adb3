"""``gtasr upscale --ray`` on a real two-node Ray cluster on this machine (127.0.0.1 only).

Each node has one CPU, so two one-CPU workers run one on each node. The reference is
the plain command with one thread, as each Ray worker has (``--ray-threads 1``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'gtasr[ray]')")

import ray
from ray._private import ray_constants
from ray.cluster_utils import Cluster

import gtasr
from gtasr.cli import main
from gtasr.infer.batch import UpscaleOptions
from gtasr.integrations.ray import upscale_dataset

pytestmark = pytest.mark.slow  # a Ray cluster takes about 10 s to start, each run as long

NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20}
WORKER_TITLE = "ray::MapWorker(MapBatches(_Worker))"
"""How Ray titles the process of a gtasr worker (its command line)."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head and a second node, each with one CPU, on the loopback interface."""
    with pytest.MonkeyPatch.context() as patch:
        # Loopback addresses only: the variable for Ray's processes, the constant it set
        # when this process imported Ray.
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        patch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        nodes = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
        nodes.add_node(**NODE)
        try:
            yield nodes
        finally:
            nodes.shutdown()


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 small images, 4 of them in a sub-folder, and a corrupt one."""
    folder = tmp_path_factory.mktemp("collection")
    rng = np.random.default_rng(0)
    for index in range(24):
        where = folder / "sub" if index % 6 == 0 else folder
        where.mkdir(exist_ok=True)
        size = (16 + index % 3 * 4, 16)
        pixels = rng.integers(0, 256, (*size, 3), np.uint8)
        PIL.Image.fromarray(pixels).save(where / f"img{index:02d}.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return folder


@pytest.fixture(scope="module")
def plain(collection: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the one-process command writes, with one thread as each Ray worker."""
    import torch

    out = tmp_path_factory.mktemp("plain")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = ["upscale", str(collection), "--recursive", "-o", str(out), "--seed", "9"]
        assert main([*args, *SAME_BACKEND]) == 1
    finally:
        torch.set_num_threads(threads)
    return out


SAME_BACKEND = ["--backend", "torch"]
"""One backend for the plain command (here, where ``auto`` means torch: tests/conftest.py)
and the Ray workers (processes of their own, where it would mean OpenVINO)."""


def _outputs(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def _lines(manifest: Path) -> dict[str, dict]:
    import json

    return {Path(line["input"]).name: line for line in map(json.loads, manifest.open())}


def test_two_nodes_write_the_plain_commands_bytes(
    cluster: Cluster, collection: Path, plain: Path, tmp_path: Path
) -> None:
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    args = ["upscale", str(collection), "--recursive", "-o", str(out), "--seed", "9"]
    args += SAME_BACKEND
    ray_args = ["--ray", cluster.address, "--ray-workers", "2", "--manifest", str(manifest)]
    assert main([*args, *ray_args]) == 1  # the corrupt file failed, the others were written

    assert [node.node_ip_address for node in cluster.list_all_nodes()] == ["127.0.0.1"] * 2
    assert _outputs(out) == _outputs(plain)
    assert len(_outputs(out)) == 24
    lines = _lines(manifest)
    assert len(lines) == 25
    assert lines["corrupt.png"]["status"] == "failed"
    assert "corrupt.png" in lines["corrupt.png"]["error"]
    assert {line["status"] for name, line in lines.items() if name != "corrupt.png"} == {"written"}

    # A rerun skips what exists before reading it and writes only what is missing.
    for name in ("img01.png", "img06.png"):
        (out / name).unlink()
    before = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}
    assert main([*args, *ray_args]) == 1
    lines = _lines(manifest)
    assert {name for name, line in lines.items() if line["status"] == "written"} == {
        "img01.png",
        "img06.png",
    }
    assert sum(line["status"] == "skipped" for line in lines.values()) == 22
    assert _outputs(out) == _outputs(plain)
    assert all(out.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in before.items())


def test_a_killed_worker_is_retried_and_every_output_is_whole(
    cluster: Cluster, collection: Path, plain: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "gtasr", "upscale", str(collection), "--recursive"]
    command += ["-o", str(out), "--seed", "9", "--ray", cluster.address, "--ray-workers", "2"]
    command += SAME_BACKEND
    env = dict(os.environ, PYTHONPATH=str(Path(gtasr.__file__).parents[1]))
    run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        killed, written_then = _kill_a_worker_once_writing(out, run)
        output, _ = run.communicate(timeout=180)
    finally:
        run.kill()
    assert run.returncode == 1, output.decode()[-3000:]
    assert killed and written_then < 24
    assert _outputs(out) == _outputs(plain)  # every file whole, none at a temporary name


def _kill_a_worker_once_writing(out: Path, run: subprocess.Popen) -> tuple[bool, int]:
    """SIGKILL one worker process as soon as the first output appears."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        written = [path for path in out.glob("*.png")] if out.is_dir() else []
        if written:
            workers = _worker_pids()
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                return True, len(written)
        time.sleep(0.01)
    return False, 0


def _worker_pids() -> list[int]:
    """Processes on this machine whose command line is a gtasr Ray worker's."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith(WORKER_TITLE):
            pids.append(int(entry.name))
    return pids


def test_upscale_dataset_returns_a_record_per_row(
    cluster: Cluster, collection: Path, plain: Path, tmp_path: Path
) -> None:
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        rows = [{"input": str(collection / "sub" / "img06.png"), "name": "sub/img06.png"}]
        rows.append({"input": str(collection / "img01.png"), "name": "img01.png"})
        options = UpscaleOptions(out_dir=tmp_path / "out", seed=9)
        records = upscale_dataset(ray.data.from_items(rows), options).take_all()
    finally:
        ray.shutdown()
    assert sorted(record["status"] for record in records) == ["written", "written"]
    assert {Path(record["output"]).name for record in records} == {"img06.png", "img01.png"}
    for name in ("img06.png", "img01.png"):
        assert (tmp_path / "out" / name).read_bytes() == (plain / name).read_bytes()


def test_a_model_the_workers_cannot_load_stops_with_one_line(
    cluster: Cluster, collection: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "missing.safetensors"
    args = ["upscale", str(collection), "-o", str(tmp_path / "out"), "--model", str(missing)]
    caplog.set_level(logging.ERROR, logger="gtasr")
    assert main([*args, "--ray", cluster.address, "--ray-workers", "1"]) == 2
    last = caplog.records[-1].getMessage()
    assert last == f"gtasr upscale: error: {missing}: model file not found"
