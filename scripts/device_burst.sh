#!/usr/bin/env bash
# A GTASR-tiny training burst on a lent GPU machine: Stage I then Stage II of the
# gpu_burst configs, sized to a time budget, with what is worth keeping copied to $OUT.
# Run from the repository root with the pack of scripts/pack_device_data.py carried
# (docs/training.md, "A training burst on a lent GPU"):
#
#   bash scripts/device_burst.sh                            # on the GPU machine
#   bash scripts/device_burst.sh --set train.seed=1         # more --set for every run
#   DEVICE=cpu STEPS=4 STAGE2_STEPS=2 bash scripts/device_burst.sh --set data.crop_size=64
#
# 1. A probe: PROBE_STEPS (at least 2) steps of Stage I in a throw-away run, no validation.
#    Its speed (from its first step's end on, so without the warm-up) and its start-up time
#    size the rest.
# 2. Stage I for STAGE1_SHARE % of the time left: train.iterations from the speed, the lr
#    milestones at the fractions of the config's (N switches at half of the run by itself).
# 3. Stage II from Stage I's last checkpoint for the time left, its reference network psi
#    re-synced at half of its steps. A Stage II step is taken to cost STAGE2_COST Stage I
#    steps: 1.4 times the time per image (bench/train_step.py, tiny, CPU) at batch 12
#    instead of 32 is 0.53; 0.6 leaves room for a GPU's lower efficiency at small batches.
# 4. Into $OUT (8 files at most): Stage I's last checkpoint (stage1/step-N/, what a CPU
#    Stage II or --resume needs), Stage II's model.safetensors (its last checkpoint's EMA
#    weights where it was stopped early) and best.safetensors, logs.tar.gz (each run's
#    config.yaml, metrics.jsonl and best.json) and summary.json (steps, seconds, it/s and
#    the last validation of each stage, and the plan).
#
# Each stage runs under `timeout -s TERM` at its share plus GRACE_S: the trainer then writes
# a checkpoint and exits (143), and the burst goes on with what was saved. STEPS and
# STAGE2_STEPS fix the iterations; with both set there is no probe. The extra arguments come
# before the burst's own --set, so they cannot change iterations, milestones or device.
#
# Every run reads its photos, validation pairs and perceptual weights from $PACK.
#
# Environment [defaults]: PACK [data-cache/device-pack], BUDGET_S [480], DEVICE [cuda],
# STEPS, STAGE2_STEPS [from the probe], PROBE_STEPS [30], STAGE1_SHARE [75],
# STAGE2_COST [0.6], GRACE_S [30], RUNS [runs/device-burst], OUT [out/device-burst],
# PYTHON [python3].
set -euo pipefail

PACK=${PACK:-data-cache/device-pack}
BUDGET_S=${BUDGET_S:-480}
DEVICE=${DEVICE:-cuda}
STEPS=${STEPS:-}
STAGE2_STEPS=${STAGE2_STEPS:-}
PROBE_STEPS=${PROBE_STEPS:-30}
STAGE1_SHARE=${STAGE1_SHARE:-75}
STAGE2_COST=${STAGE2_COST:-0.6}
GRACE_S=${GRACE_S:-30}
RUNS=${RUNS:-runs/device-burst}
OUT=${OUT:-out/device-burst}
PYTHON=${PYTHON:-python3}
STAGE1_CONFIG=configs/gpu_burst_stage1.yaml
STAGE2_CONFIG=configs/gpu_burst_stage2.yaml
EXTRA=("$@")

export GTASR_WEIGHTS_DIR=$PACK/weights
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1

# helper rate RUN | milestones CONFIG ITERATIONS | summary PLAN_JSON RUN...:
# what bash cannot do (JSON and YAML), in Python.
helper() {
    "$PYTHON" - "$@" <<'EOF'
import json
import sys
from pathlib import Path

import yaml


def records(run, kind):
    """The metrics.jsonl records of one kind ("train", "val", "summary") of a run."""
    path = Path(run) / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [record for record in map(json.loads, lines) if record.get("kind") == kind]


def rate(run):
    """Steps per second from the first to the last logged step (the first one's warm-up out)."""
    train = records(run, "train")
    first, last = train[0], train[-1]
    return f"{(last['step'] - first['step']) / (last['wall_s'] - first['wall_s']):.6g}"


def milestones(config, iterations):
    """The config's lr milestones at the same fractions of ``iterations`` steps."""
    train = yaml.safe_load(Path(config).read_text(encoding="utf-8"))["train"]
    scale = int(iterations) / train["iterations"]
    return json.dumps([round(step * scale) for step in train["lr_milestones"]])


def summary(plan, *runs):
    """The plan and, for each run, its steps, seconds, speed and last validation."""
    document = {"plan": json.loads(plan)}
    for run in runs:
        ends, checks = records(run, "summary"), records(run, "val")
        end = ends[-1] if ends else {}
        document[Path(run).name] = {
            "steps": end.get("final_step"),
            "seconds": end.get("wall_s"),
            "steps_per_s": end.get("steps_per_s"),
            "stopped_by": end.get("stopped_by"),
            "last_validation": checks[-1] if checks else None,
        }
    return json.dumps(document, indent=2)


command, *arguments = sys.argv[1:]
print({"rate": rate, "milestones": milestones, "summary": summary}[command](*arguments))
EOF
}

# calc EXPRESSION: floating-point arithmetic, printed as an integer (rounded down).
calc() {
    awk "BEGIN { value = $1; print (value < 0 ? 0 : int(value)) }"
}

# train_run SECONDS CONFIG RUN ARGS...: gtasr train under a TERM timeout; echoes its status.
train_run() {
    local seconds=$1 config=$2 run=$3
    shift 3
    local status=0
    timeout -k 30 -s TERM "$seconds" "$PYTHON" -m gtasr train "$config" -o "$run" --overwrite \
        --device "$DEVICE" --set "data.hr_dirs=[$PACK/photos]" --set "data.val_dir=$PACK/testset" \
        "${EXTRA[@]}" --set log.progress=false "$@" >&2 || status=$?
    echo "$status"
}

# latest_checkpoint RUN: the newest complete checkpoint folder of RUN, or nothing.
latest_checkpoint() {
    local pointer=$1/checkpoints/latest
    [[ -f $pointer ]] && echo "$1/checkpoints/$(<"$pointer")"
}

# collect: copy the burst's results into $OUT (8 files at most).
collect() {
    local plan=$1 checkpoint model
    mkdir -p "$OUT"
    find "$OUT" -mindepth 1 -delete
    mkdir -p "$OUT/stage2"
    checkpoint=$(latest_checkpoint "$RUNS/stage1" || true)
    if [[ -n $checkpoint ]]; then
        mkdir -p "$OUT/stage1"
        cp -r "$checkpoint" "$OUT/stage1/"
    fi
    model=$RUNS/stage2/model.safetensors
    if [[ ! -f $model ]]; then
        checkpoint=$(latest_checkpoint "$RUNS/stage2" || true)
        model=${checkpoint:+$checkpoint/model-ema.safetensors}
    fi
    [[ -n $model ]] && cp "$model" "$OUT/stage2/model.safetensors"
    [[ -f $RUNS/stage2/best.safetensors ]] && cp "$RUNS/stage2/best.safetensors" "$OUT/stage2/"
    tar -czf "$OUT/logs.tar.gz" -C "$RUNS" --ignore-failed-read \
        stage1/config.yaml stage1/metrics.jsonl stage1/best.json \
        stage2/config.yaml stage2/metrics.jsonl stage2/best.json 2>/dev/null || true
    helper summary "$plan" "$RUNS/stage1" "$RUNS/stage2" >"$OUT/summary.json"
    ls -lR "$OUT" >&2
}

main() {
    local rate=null overhead=0 left share steps1 steps2 limit started status=0 code
    if [[ -z $STEPS || -z $STAGE2_STEPS ]]; then
        started=$SECONDS
        code=$(train_run 300 "$STAGE1_CONFIG" "$RUNS/probe" --set data.val_dir=null \
            --set log.every=1 --set log.tensorboard=false --set "train.iterations=$PROBE_STEPS" \
            --set "train.checkpoint_every=$PROBE_STEPS")
        ((code == 0)) || { echo "the speed probe failed (exit $code)" >&2; return "$code"; }
        rate=$(helper rate "$RUNS/probe")
        overhead=$(calc "$SECONDS - $started - $PROBE_STEPS / $rate")
        echo "probe: $rate Stage I steps/s, $overhead s to start a run" >&2
    fi
    left=$((BUDGET_S - SECONDS))
    share=$((left * STAGE1_SHARE / 100))
    steps1=${STEPS:-$(calc "$rate * ($share - $overhead)")}
    ((steps1 > 0)) || steps1=1
    code=$(train_run $((share > 0 ? share + GRACE_S : GRACE_S)) "$STAGE1_CONFIG" "$RUNS/stage1" \
        --set "train.iterations=$steps1" \
        --set "train.lr_milestones=$(helper milestones "$STAGE1_CONFIG" "$steps1")")
    ((code == 0 || code == 124 || code == 143)) || status=$code
    left=$((BUDGET_S - SECONDS))
    steps2=${STAGE2_STEPS:-$(calc "$rate / $STAGE2_COST * ($left - $overhead)")}
    ((steps2 > 0)) || steps2=1
    if [[ -n $(latest_checkpoint "$RUNS/stage1" || true) ]]; then
        limit=$((left > 0 ? left + GRACE_S : GRACE_S))
        code=$(train_run "$limit" "$STAGE2_CONFIG" "$RUNS/stage2" \
            --set "init_from=$RUNS/stage1" --set "train.iterations=$steps2" \
            --set "train.reference_sync_every=$(((steps2 + 1) / 2))")
        ((code == 0 || code == 124 || code == 143)) || status=$code
    else
        echo "Stage I left no checkpoint: no Stage II" >&2
        ((status)) || status=1
    fi
    collect "{\"probe_steps_per_s\": $rate, \"stage1_iterations\": $steps1, \
\"stage2_iterations\": $steps2, \"budget_s\": $BUDGET_S, \"total_s\": $SECONDS}"
    return "$status"
}

main
