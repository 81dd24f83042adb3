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
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'gtasr[ray]')")

import pyarrow.fs
import ray
from ray._private import ray_constants
from ray.cluster_utils import Cluster

import gtasr
from gtasr.cli import main
from gtasr.infer.batch import UpscaleOptions
from gtasr.infer.remote import upscale_object
from gtasr.infer.upscaler import Upscaler
from gtasr.integrations.ray import upscale_dataset

pytestmark = pytest.mark.slow  # a Ray cluster takes about 10 s to start, each run as long

NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20}
S3_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_EC2_METADATA_DISABLED": "true",
}
"""Credentials of the S3 stand-in, and no look for a cloud machine's own: the driver and
Ray's processes (which inherit them) read them."""
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
        for name, value in S3_ENVIRONMENT.items():  # for the S3 stand-in below
            patch.setenv(name, value)
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
        torch_backend = partial(Upscaler.from_pretrained, None, backend="torch")  # as `plain`
        records = upscale_dataset(ray.data.from_items(rows), options, torch_backend).take_all()
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


@pytest.fixture(scope="module")
def s3(cluster: Cluster, collection: Path) -> Iterator[str]:
    """The collection under ``s3://photos/set`` of an S3 stand-in (moto) on 127.0.0.1: the
    query that points a pyarrow URI at it."""
    moto_server = pytest.importorskip("moto.server", reason="pip install 'moto[server]'")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        query = f"?endpoint_override={host}:{port}&scheme=http"
        store = _store(query)
        pyarrow.fs.S3FileSystem(
            endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True
        ).create_dir("photos")
        pyarrow.fs.copy_files(str(collection), "photos/set", destination_filesystem=store)
        yield query
    finally:
        server.stop()


def _store(query: str) -> Any:
    """The S3 filesystem that ``query`` points at."""
    return pyarrow.fs.FileSystem.from_uri(f"s3://photos{query}")[0]


def _objects(query: str, folder: str) -> dict[str, bytes]:
    store = _store(query)
    found = store.get_file_info(pyarrow.fs.FileSelector(folder, recursive=True))
    files = sorted(info.path for info in found if info.type == pyarrow.fs.FileType.File)
    return {Path(path).relative_to(folder).as_posix(): _read(store, path) for path in files}


def _read(store: Any, path: str) -> bytes:
    with store.open_input_stream(path) as stream:
        return stream.read()


def test_s3_inputs_and_outputs_give_the_plain_commands_bytes(
    cluster: Cluster, s3: str, plain: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "run.jsonl"
    args = ["upscale", f"s3://photos/set{s3}", "--recursive", "-o", f"s3://photos/big{s3}"]
    args += ["--seed", "9", *SAME_BACKEND, "--manifest", str(manifest)]
    args += ["--ray", cluster.address, "--ray-workers", "2"]
    assert main(args) == 1  # the corrupt file failed, the others were written

    assert _objects(s3, "photos/big") == _outputs(plain)  # and no other object
    lines = _lines(manifest)
    assert lines["corrupt.png"]["input"] == "s3://photos/set/corrupt.png"  # no query
    assert lines["corrupt.png"]["error"].startswith("s3://photos/set/corrupt.png: ")
    assert lines["img06.png"]["input"] == "s3://photos/set/sub/img06.png"
    assert lines["img06.png"]["output"] == "s3://photos/big/img06.png"
    assert sum(line["status"] == "written" for line in lines.values()) == 24

    # A rerun skips what exists before reading it and writes only what is missing.
    for name in ("img01.png", "img06.png"):
        _store(s3).delete_file(f"photos/big/{name}")
    assert main(args) == 1
    lines = _lines(manifest)
    written = {name for name, line in lines.items() if line["status"] == "written"}
    assert written == {"img01.png", "img06.png"}
    assert sum(line["status"] == "skipped" for line in lines.values()) == 22
    assert _objects(s3, "photos/big") == _outputs(plain)


def test_file_uris_are_read_through_pyarrow_into_a_local_folder(
    cluster: Cluster, collection: Path, plain: Path, tmp_path: Path
) -> None:
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    uris = [f"file://{collection}/img{index:02d}.png" for index in (1, 2, 3)]
    args = ["upscale", *uris, "-o", f"file://{out}", "--seed", "9", *SAME_BACKEND]
    args += ["--manifest", str(manifest), "--ray", cluster.address, "--ray-workers", "2"]
    assert main(args) == 0

    assert _outputs(out) == {name: (plain / name).read_bytes() for name in _outputs(out)}
    assert sorted(_outputs(out)) == ["img01.png", "img02.png", "img03.png"]
    assert {line["input"] for line in _lines(manifest).values()} == set(uris)


def test_s3_objects_into_a_local_folder(
    cluster: Cluster, s3: str, plain: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    uris = [f"s3://photos/set/img{index:02d}.png{s3}" for index in (4, 5)]
    args = ["upscale", *uris, "-o", str(out), "--seed", "9", *SAME_BACKEND]
    assert main([*args, "--ray", cluster.address, "--ray-workers", "2"]) == 0
    assert _outputs(out) == {
        name: (plain / name).read_bytes() for name in ("img04.png", "img05.png")
    }


def test_a_worker_skips_an_existing_object_before_reading_its_input(s3: str) -> None:
    store = _store(s3)
    with store.open_output_stream("photos/kept/img01.png") as stream:
        stream.write(b"an earlier output")
    options = UpscaleOptions(out_dir=Path("photos/kept"), method="bicubic")
    # The input is gone: reading it would fail the file.
    record = upscale_object(
        "photos/gone/img01.png", options, None, filesystem=store, output_filesystem=store
    )
    assert (record.input, record.status) == ("s3://photos/gone/img01.png", "skipped")
    assert record.output == "s3://photos/kept/img01.png"
    assert _read(store, "photos/kept/img01.png") == b"an earlier output"

    record = upscale_object(
        "photos/gone/img02.png", options, None, filesystem=store, output_filesystem=store
    )
    assert record.status == "failed"
    assert record.error.startswith("s3://photos/gone/img02.png: cannot read (")
    assert store.get_file_info("photos/kept/img02.png").type == pyarrow.fs.FileType.NotFound


def test_local_paths_and_uris_do_not_mix(
    collection: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="gtasr")
    args = ["upscale", f"file://{collection}", str(collection), "-o", str(tmp_path / "out")]
    assert main([*args, "--ray", "--method", "bicubic"]) == 2
    last = caplog.records[-1].getMessage()
    assert last.endswith(
        f"error: {collection}: INPUTs must be all URIs or all local paths, not both"
    )
    assert not (tmp_path / "out").exists()


def test_a_missing_bucket_is_one_line_naming_it(
    cluster: Cluster, s3: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="gtasr")
    ray_args = ["--ray", cluster.address, "--method", "bicubic"]
    args = ["upscale", f"s3://nothere/set{s3}", "-o", str(tmp_path / "out"), *ray_args]
    assert main(args) == 1  # an INPUT that names nothing, as a missing folder
    assert caplog.records[-1].getMessage() == "s3://nothere/set: no such bucket 'nothere'"

    args = ["upscale", f"s3://photos/set{s3}", "-o", f"s3://nothere/big{s3}", *ray_args]
    assert main(args) == 2  # stopped before any work
    last = caplog.records[-1].getMessage()
    assert last == "gtasr upscale: error: s3://nothere/big: no such bucket 'nothere'"
