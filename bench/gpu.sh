#!/usr/bin/env bash
# The GPU benchmark with every option: the paper preset at 128x128 LR -> 512x512 in bf16 and
# fp16, CUDA graphs and torch.compile included, JSON to stdout (and to -o FILE).
#
#   bench/gpu.sh [-o FILE] [--model GTASR_final_phase.pth] [other bench/gpu.py flags]
#
# On a machine without an NVIDIA GPU it stops at once with status 2. Otherwise it runs
# bench/gpu.py with the first Python whose PyTorch sees the GPU: .venv's, else python3's (with
# src/ on PYTHONPATH, so a machine that already has a CUDA build of PyTorch needs no install
# and no network), else it makes .venv (`make venv`, which installs PyTorch's CUDA build when
# nvidia-smi is present).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "bench/gpu.sh: no nvidia-smi on this machine: no NVIDIA GPU to measure" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2

sees_cuda() {
  "$1" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null
}

args=(bench/gpu.py --cuda-graphs --compile default "$@")
if [[ -x .venv/bin/python ]] && sees_cuda .venv/bin/python; then
  exec .venv/bin/python "${args[@]}"
elif command -v python3 >/dev/null 2>&1 && sees_cuda python3; then
  echo "bench/gpu.sh: using $(command -v python3) and src/" >&2
  PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} exec python3 "${args[@]}"
fi
test -x .venv/bin/python || make venv >&2
exec .venv/bin/python "${args[@]}"
