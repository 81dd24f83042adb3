"""Markdown tables of the README's results, from what the two scripts wrote.

    python scripts/results_table.py            # after scripts/train_cpu_tiny.sh and
                                               # scripts/evaluate_cpu_tiny.sh

Reads the scores under ``out/results/`` (bench/quality.py's JSON) and each run's
``metrics.jsonl`` (steps and wall time), and prints one table per test set.
CPU-hours are the runs' wall time times their intra-op threads (a run without
``train.threads`` counts every core of this machine, torch's default).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gtasr.train.cost import run_cost

Producers = tuple[tuple[str, int | None], ...]


def methods(ta_steps: int, ft_steps: int) -> dict[str, Producers]:
    """Name in out/results -> the runs that produced it, in training order, each with the
    step it was taken at (None: the run's end); the GTASR arm's Stage I is ta_s1 up to
    ``ta_steps`` and v2.1's fine-tuning Stage I is ft_s1 up to ``ft_steps``
    (scripts/train_cpu_tiny.sh's TA_STEPS and FT_STEPS)."""
    v2 = (("ta_s1", None), ("ta_s2", None))
    return {
        "bicubic": (),
        "CT-only-stage1": (("ct_s1", None),),
        "CT-only": (("ct_s1", None), ("ct_s2", None)),
        "CT+TA-stage1": (("ta_s1", ta_steps),),
        "GTASR": (("ta_s1", ta_steps), ("gtasr_s2", None)),
        "v2-stage1": (("ta_s1", None),),
        "v2": v2,
        "v2.1": (*v2, ("ft_s1", ft_steps), ("ft_s2", None)),
    }


PAIRED = (("psnr", "PSNR-Y"), ("ssim", "SSIM-Y"), ("lpips", "LPIPS-alex"), ("dists", "DISTS"))
PAIRED += (("lpips-vgg", "LPIPS-vgg"),)


def training_cells(runs: Producers, root: Path) -> tuple[str, str]:
    """'Stage I 3000 + Stage II 600' and the summed CPU-hours, or 'none'."""
    if not runs:
        return "none", "0"
    costs = [run_cost(root / name, until) for name, until in runs]
    stages = " + ".join(
        f"{'Stage II' if name.endswith('_s2') else 'Stage I'} {steps}"
        for (name, _), (steps, _) in zip(runs, costs, strict=True)
    )
    return stages, f"{sum(hours for _, hours in costs):.2f}"


def table(
    results: Path,
    runs: Path,
    folder: str,
    columns: tuple[tuple[str, str], ...],
    producers: dict[str, Producers],
) -> str:
    """One Markdown table: a row per method that has scores in ``results/folder``."""
    suffix = "-no-reference" if folder == "realset65" else ""
    head = "| method | training steps | CPU-hours | " + " | ".join(t for _, t in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 3)]
    for name, producing in producers.items():
        report = results / folder / f"{name}{suffix}.json"
        if not report.is_file():
            continue
        means = json.loads(report.read_text())["mean"]
        stages, hours = training_cells(producing, runs)
        cells = " | ".join(f"{means[key]:.4f}" for key, _ in columns)
        lines.append(f"| {name} | {stages} | {hours} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("out/results"))
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--ta-steps", type=int, default=10250, help="the GTASR arm's Stage I step")
    parser.add_argument("--ft-steps", type=int, default=1500, help="ft_s1's last step")
    args = parser.parse_args()
    producers = methods(args.ta_steps, args.ft_steps)
    sets = (
        ("imagenet-test-sample", PAIRED),
        ("held-out-photos", PAIRED),
        ("realset65", (("niqe", "NIQE"),)),
    )
    for folder, columns in sets:
        print(f"{folder}:\n\n{table(args.results, args.runs, folder, columns, producers)}\n")


if __name__ == "__main__":
    main()
