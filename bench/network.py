"""CPU cost of the backbone presets; prints one JSON object per preset.

For each preset: parameter count, GMAC for one LR image, forward latency
under ``torch.inference_mode`` (median of a few repeats), and how close the
achieved throughput (2 * MACs / latency) comes to a dense fp32 matrix product
measured in the same run. Matrix products and forward passes alternate, and
the ratio is the median of the per-pair ratios, so that a slowly changing
load on a shared machine affects both sides alike. With ``--train-step`` it
also times the network share of a Stage I step: forward + backward of the
online network and a no-grad forward of the target, at the given batch.

    python bench/network.py --presets paper small tiny --threads 2
    python bench/network.py --presets tiny --train-step

On a shared, busy machine run it with ``OMP_WAIT_POLICY=PASSIVE``: spinning
OpenMP workers that wait for a descheduled sibling make every one of the
network's many small parallel regions slow (up to 50x for ``tiny``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable

import torch

from gtasr.nets import PRESETS, build_network, count_macs

MATMUL_SIZE = 2048


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_seconds(
    first: Callable[[], object], second: Callable[[], object], repeats: int
) -> tuple[list[float], list[float]]:
    """Wall times of ``first`` and ``second`` called alternately, after one warm-up each."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return times


def matmul_operands() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=gen)
    return a, torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=gen)


def network_inputs(lr: int, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 4 * lr, 4 * lr, generator=gen)
    y = torch.rand(batch, 3, lr, lr, generator=gen) * 2 - 1
    return x, torch.zeros(batch), y


def train_step_seconds(name: str, lr: int, batch: int, repeats: int) -> float:
    """Network share of a Stage I step: online forward+backward plus target forward."""
    online = build_network(name).train()
    target = build_network(name).train()
    target.load_state_dict(online.state_dict())
    target.requires_grad_(False)
    x, c_noise, y = network_inputs(lr, batch)

    def step() -> None:
        online.zero_grad(set_to_none=True)
        online(x, c_noise, y).square().mean().backward()
        with torch.no_grad():
            target(x, c_noise, y)

    return median_seconds(step, repeats, warmup=2)


def bench_preset(name: str, args: argparse.Namespace) -> dict[str, object]:
    net = build_network(name).eval()
    macs = count_macs(net, args.lr_size)
    x, c_noise, y = network_inputs(args.lr_size, 1)
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()
    )

    def forward() -> None:
        with torch.inference_mode(), autocast:
            net(x, c_noise, y)

    a, b = matmul_operands()
    mm_times, net_times = interleaved_seconds(lambda: a @ b, forward, args.repeats)
    mm_flop = 2 * MATMUL_SIZE**3
    latency = statistics.median(net_times)
    achieved = 2 * macs / latency / 1e9
    reference = mm_flop / statistics.median(mm_times) / 1e9
    ratio = statistics.median(
        (2 * macs / t_net) / (mm_flop / t_mm)
        for t_mm, t_net in zip(mm_times, net_times, strict=True)
    )
    result: dict[str, object] = {
        "preset": name,
        "parameters": sum(p.numel() for p in net.parameters()),
        "stride": net.stride,
        "lr_size": args.lr_size,
        f"gmac_{args.lr_size}": round(macs / 1e9, 3),
        "dtype": "bf16-autocast" if args.bf16 else "fp32",
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "forward_latency_s": round(latency, 4),
        "achieved_gflops": round(achieved, 1),
        "matmul_fp32_gflops": round(reference, 1),
        "ratio_to_matmul": round(ratio, 3),
    }
    if args.train_step:
        seconds = train_step_seconds(name, args.train_lr_size, args.train_batch, args.repeats)
        result["train_step"] = {
            "batch": args.train_batch,
            "lr_size": args.train_lr_size,
            "seconds": round(seconds, 4),
        }
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--lr-size", type=int, default=64, help="LR side of the input image")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="time under bfloat16 autocast")
    parser.add_argument("--train-step", action="store_true", help="also time a training step")
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--train-lr-size", type=int, default=32)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for name in args.presets:
        print(json.dumps(bench_preset(name, args)), flush=True)


if __name__ == "__main__":
    main()
