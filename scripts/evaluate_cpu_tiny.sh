#!/usr/bin/env bash
# Scores the runs of scripts/train_cpu_tiny.sh and bicubic with one seed, and draws the
# figures of docs/results.md. Tables and JSON go to ${OUT:-out/results}, figures to
# docs/images/.
#
#   scripts/evaluate_cpu_tiny.sh                    # every method, the figures and the tables
#   scripts/evaluate_cpu_tiny.sh bicubic CT-only    # score only these (each adds its results)
#   scripts/evaluate_cpu_tiny.sh diagnostics grid tables   # the figures and the tables
#
# Test sets: the 32 ImageNet-Test pairs and the 65 RealSet65 photos in ../shared/data, and
# the held-out photos made by `gtasr make-testset` (data-cache/testset-photos).
set -euo pipefail

PY=${PY:-.venv/bin/python}
GTASR=${GTASR:-.venv/bin/gtasr}
RUNS=${RUNS:-runs}
OUT=${OUT:-out/results}
DATA=${DATA:-../shared/data}
FIGURES=${FIGURES:-docs/images}
CT_STEPS=${CT_STEPS:-22000}
TA_STEPS=${TA_STEPS:-10250}
FT_STEPS=${FT_STEPS:-1500}
mkdir -p "$OUT" "$FIGURES"

# Stage I runs stopped before their last iteration have no model.safetensors: their EMA
# weights at the stop are in the checkpoint of that step.
declare -A models=(
    [CT-only-stage1]=$RUNS/ct_s1/checkpoints/step-$(printf %08d "$CT_STEPS")/model-ema.safetensors
    [CT-only]=$RUNS/ct_s2/model.safetensors
    [CT+TA-stage1]=$RUNS/ta_s1/checkpoints/step-$(printf %08d "$TA_STEPS")/model-ema.safetensors
    [GTASR]=$RUNS/gtasr_s2/model.safetensors
    [v2-stage1]=$RUNS/ta_s1/best.safetensors
    [v2]=$RUNS/ta_s2/best.safetensors
    [v2.1]=$RUNS/ft_s2/model.safetensors
)

score() {
    local name=$1 args=(--no-bicubic)
    if [[ $name == bicubic ]]; then
        args=()
    elif [[ -v models[$name] ]]; then
        args+=(--model "$name=${models[$name]}")
    else
        echo "unknown method '$name' (bicubic ${!models[*]} diagnostics grid tables)" >&2
        exit 2
    fi
    "$PY" bench/quality.py "${args[@]}" --data "$DATA/imagenet-test-sample" \
        -o "$OUT/imagenet-test-sample"
    "$PY" bench/quality.py "${args[@]}" --data data-cache/testset-photos -o "$OUT/held-out-photos"
    "$PY" bench/quality.py "${args[@]}" --data none --no-reference "$DATA/realset65" \
        -o "$OUT/realset65"
}

diagnostics() {
    # Drift and decoupling of the CT-only baseline and full GTASR at equal compute.
    local diag=(--model "${models[CT-only]}" --model "${models[GTASR]}"
        --gt "$DATA/imagenet-test-sample/gt" --lq "$DATA/imagenet-test-sample/lq" --seed 0)
    "$GTASR" drift "${diag[@]}" --lpips -o "$OUT/drift" --overwrite
    "$GTASR" decoupling "${diag[@]}" -o "$OUT/decoupling" --overwrite
    cp "$OUT/drift/drift.png" "$FIGURES/drift.png"
    cp "$OUT/decoupling/decoupling.png" "$FIGURES/decoupling.png"
}

grid() {
    local sr=$OUT/imagenet-test-sample
    "$GTASR" compare-grid --lq "$DATA/imagenet-test-sample/lq" \
        --gt "$DATA/imagenet-test-sample/gt" --sr "CT-only=$sr/CT-only" --sr "GTASR=$sr/GTASR" \
        --sr "v2=$sr/v2" \
        --images "${GRID_IMAGES:-ILSVRC2012_val_00000067,ILSVRC2012_val_00000104}" \
        --box "${GRID_BOX:-64,64,128,128}" -o "$FIGURES/comparison.png" --overwrite
}

tables() {
    "$PY" scripts/results_table.py --results "$OUT" --runs "$RUNS" --ta-steps "$TA_STEPS" \
        --ft-steps "$FT_STEPS" | tee "$OUT/tables.md"
}

if (($# == 0)); then
    set -- bicubic "${!models[@]}" diagnostics grid tables
fi
for name in "$@"; do
    case $name in
        diagnostics | grid | tables) "$name" ;;
        *) score "$name" ;;
    esac
done
