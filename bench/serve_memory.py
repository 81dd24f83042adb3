"""Memory of ``gtasr serve`` before, during and after a large job; prints one JSON object.

Starts the server as a user would (its own temporary folder), runs one small job to
reach its steady idle state, records the resident set size (RSS), then upscales a
large image through the API and records the peak RSS during the job and the RSS a few
seconds after it. The page gives memory back after each job, so ``after / idle``
should stay under 1.2.

    python bench/serve_memory.py --side 1500
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import PIL.Image


def rss_mib(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gtasr serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("gtasr serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=1500, help="side of the large LR image")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before 'after'")
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # gradio_client downloads each result through an empty folder it leaves behind in
        # the temporary folder: this run's, removed with it.
        tempfile.tempdir = tmp
        rng = np.random.default_rng(0)
        small, large = root / "small.png", root / "large.png"
        PIL.Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)).save(small)
        pixels = rng.integers(0, 256, (args.side, args.side, 3), np.uint8)
        PIL.Image.fromarray(pixels).save(large)
        port = _free_port()
        url = f"http://127.0.0.1:{port}/"
        command = [sys.executable, "-m", "gtasr", "serve", "--port", str(port)]
        with open(root / "server.log", "wb") as sink:
            server = subprocess.Popen(command, stdout=sink, stderr=sink)
        try:
            _wait_until_up(url, server)
            client = Client(url, verbose=False, download_files=str(root / "downloads"))
            client.predict(handle_file(str(small)), api_name="/upscale")
            time.sleep(args.settle)
            idle = rss_mib(server.pid)
            peak = idle
            done = threading.Event()

            def watch() -> None:
                nonlocal peak
                while not done.wait(0.2):
                    peak = max(peak, rss_mib(server.pid))

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            start = time.perf_counter()
            client.predict(handle_file(str(large)), api_name="/upscale")
            seconds = time.perf_counter() - start
            time.sleep(args.settle)
            done.set()
            watcher.join()
            after = rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=120)
    print(
        json.dumps(
            {
                "large_lr_side": args.side,
                "job_s": seconds,
                "idle_rss_mib": idle,
                "peak_rss_mib": peak,
                "after_rss_mib": after,
                "after_over_idle": after / idle,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
