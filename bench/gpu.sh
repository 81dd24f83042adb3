#!/usr/bin/env bash
# The GPU benchmark with every option: the paper preset at 128x128 LR -> 512x512 in bf16 and
# fp16, CUDA graphs and torch.compile included, JSON to stdout (and to -o FILE).
#
#   bench/gpu.sh [-o FILE] [--model GTASR_final_phase.pth] [other bench/gpu.py flags]
#
# On a machine without an NVIDIA GPU it stops at once with status 2. Otherwise it makes the
# environment if it is missing (`make venv`, which installs PyTorch's CUDA build when
# nvidia-smi is present) and runs bench/gpu.py with it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "bench/gpu.sh: no nvidia-smi on this machine: no NVIDIA GPU to measure" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2
test -x .venv/bin/python || make venv >&2
exec .venv/bin/python bench/gpu.py --cuda-graphs --compile default "$@"
