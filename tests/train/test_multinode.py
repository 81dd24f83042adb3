"""Two torchrun agents as two nodes (c10d rendezvous on 127.0.0.1, gloo) train as one node.

Each agent starts one process, as each machine of a cluster would start its GPUs' worth;
the two processes' weights after a few Stage I steps equal one process that accumulates
the same global batch (2 micro-batches).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import gtasr
from gtasr.train.checkpoints import RAW_FILE, resolve_checkpoint
from gtasr.train.config import config_to_dict
from gtasr.train.distributed import setup
from gtasr.train.run import train

SIGNAL_DEATH = "exitcode  : -"  # torchrun's report of a worker that a signal ended


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train_on_two_nodes(config_file: Path, root: Path) -> tuple[list[int | None], list[str]]:
    """Two torchrun agents as two nodes train into ``root/nodes``; their exit codes and
    stderr logs (``root/node0.log``, ``root/node1.log``)."""
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        GLOO_SOCKET_IFNAME="lo",
        PYTHONFAULTHANDLER="1",  # a worker killed by a signal prints where each thread was
        PYTHONPATH=str(Path(gtasr.__file__).parents[1]),
        TMPDIR=str(root),  # torchrun leaves its log folders there
    )
    endpoint = f"127.0.0.1:{_free_port()}"
    agent = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"]
    agent += ["--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint]
    agent += ["--rdzv-id", "gtasr-test", "--local-addr", "127.0.0.1", "--max-restarts", "0"]
    train_args = ["-m", "gtasr", "-v", "train", str(config_file), "-o", str(root / "nodes")]
    # Each node logs to a file: pipes read one after the other would let the second
    # node block on a full pipe while the first waits for it in a collective.
    log_files = [root / f"node{index}.log" for index in range(2)]
    nodes = []
    for index, log_file in enumerate(log_files):
        # Node 0 hosts the rendezvous store, as the first machine of a cluster would.
        host = ["--rdzv-conf", f"is_host={index == 0}"]
        with log_file.open("w") as stream:
            nodes.append(
                subprocess.Popen(
                    [*agent, *host, *train_args], env=env, stdout=subprocess.DEVNULL, stderr=stream
                )
            )
    try:
        for node in nodes:
            node.wait(timeout=240)
    finally:
        for node in nodes:
            node.kill()
    return [node.returncode for node in nodes], [log.read_text() for log in log_files]


@pytest.mark.slow
def test_two_nodes_match_one_node_with_the_same_global_batch(small_config, tmp_path: Path) -> None:
    config = small_config(train={"iterations": 3, "checkpoint_every": 3})
    config_file = tmp_path / "nodes.yaml"
    config_file.write_text(yaml.safe_dump(config_to_dict(config)))
    root = tmp_path
    codes, logs = _train_on_two_nodes(config_file, root)
    if codes != [0, 0] and any(SIGNAL_DEATH in log for log in logs):
        # A worker ended by a signal inside torch (seen once in CI: SIGABRT, "terminate
        # called without an active exception", no Python error): one more try on a fresh
        # run folder and port; a second failure fails the test.
        logging.getLogger(__name__).warning("a worker died by a signal:\n%s", "\n".join(logs))
        root = tmp_path / "retry"
        root.mkdir()
        codes, logs = _train_on_two_nodes(config_file, root)
    assert codes == [0, 0], "\n".join(log[-6000:] for log in logs)
    assert sum("finished at step 3" in log for log in logs) == 1  # rank 0 of node 0 reports
    joined = [[f"rank {rank}/2 joined" in log for rank in (0, 1)] for log in logs]
    assert sorted(joined) == [[False, True], [True, False]]  # one rank on each node

    config.train.grad_accumulation = 2
    train(config, tmp_path / "single", setup("cpu"))
    nodes_weights = load_file(str(resolve_checkpoint(root / "nodes") / RAW_FILE))
    single = load_file(str(resolve_checkpoint(tmp_path / "single") / RAW_FILE))
    assert nodes_weights.keys() == single.keys()
    for key in single:
        torch.testing.assert_close(nodes_weights[key], single[key], rtol=0, atol=2e-6)
