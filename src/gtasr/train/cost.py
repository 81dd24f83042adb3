"""What a training run cost: iterations and CPU-hours, from its run folder's records.

Every "train" record carries its invocation's start time, wall time so far and intra-op
thread count, and so does the summary: a run resumed many times, with other thread counts,
or killed before its summary, still adds up (``scripts/results_table.py`` reports it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml


def run_cost(run: Path, until: int | None = None) -> tuple[int, float]:
    """(iterations, CPU-hours) of one run folder up to step ``until``, over its invocations.

    Each invocation (named by the ``started`` time its records carry) counts the largest
    wall time its "train" and "summary" records up to ``until`` show, at the thread count
    they record, so a run killed before its summary still counts to its last record.
    A record without ``threads`` counts at the config's ``train.threads`` (all cores when
    that is null).
    """
    threads = (
        yaml.safe_load((run / "config.yaml").read_text())["train"]["threads"] or os.cpu_count()
    )
    steps, seconds = 0, {}
    for number, line in enumerate((run / "metrics.jsonl").read_text().splitlines()):
        record = json.loads(line)
        if record.get("kind") not in ("train", "summary") or "wall_s" not in record:
            continue
        if until is not None and record["step"] > until:
            continue
        invocation = record.get("started", f"summary {number}")
        spent = record["wall_s"] * record.get("threads", threads)
        seconds[invocation] = max(seconds.get(invocation, 0.0), spent)
        steps = max(steps, record["step"])
    return steps, sum(seconds.values()) / 3600
