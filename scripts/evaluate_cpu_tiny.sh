#!/usr/bin/env bash
# Scores the runs of scripts/train_cpu_tiny.sh and bicubic with one seed, and draws the
# README's figures. Tables and JSON go to ${OUT:-out/results}, figures to docs/images/.
#
#   scripts/evaluate_cpu_tiny.sh
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
mkdir -p "$OUT" "$FIGURES"

models=(
    "CT-only-stage1=$RUNS/ct_s1/model.safetensors"
    "CT-only=$RUNS/ct_s2/model.safetensors"
    "CT+TA=$RUNS/ta_s1/model.safetensors"
    "CT+TA-step1000=$RUNS/ta_s1_1000/best.safetensors"
    "GTASR=$RUNS/gtasr_s2/model.safetensors"
    "GTASR-release-rect=$RUNS/release_s2/model.safetensors"
)
model_args=()
for m in "${models[@]}"; do model_args+=(--model "$m"); done

"$PY" bench/quality.py "${model_args[@]}" --data "$DATA/imagenet-test-sample" \
    -o "$OUT/imagenet-test-sample" | tee "$OUT/imagenet-test-sample.txt"
"$PY" bench/quality.py "${model_args[@]}" --data data-cache/testset-photos \
    -o "$OUT/held-out-photos" | tee "$OUT/held-out-photos.txt"
"$PY" bench/quality.py "${model_args[@]}" --data none --no-reference "$DATA/realset65" \
    -o "$OUT/realset65" | tee "$OUT/realset65.txt"

# Diagnostics on the CT-only baseline (a) and full GTASR (c).
diag=(--model "$RUNS/ct_s2/model.safetensors" --model "$RUNS/gtasr_s2/model.safetensors"
    --gt "$DATA/imagenet-test-sample/gt" --lq "$DATA/imagenet-test-sample/lq" --seed 0)
"$GTASR" drift "${diag[@]}" --lpips -o "$OUT/drift" --overwrite
"$GTASR" decoupling "${diag[@]}" -o "$OUT/decoupling" --overwrite
cp "$OUT/drift/drift.png" "$FIGURES/drift.png"
cp "$OUT/decoupling/decoupling.png" "$FIGURES/decoupling.png"

sr=$OUT/imagenet-test-sample
"$GTASR" compare-grid --lq "$DATA/imagenet-test-sample/lq" --gt "$DATA/imagenet-test-sample/gt" \
    --sr "CT-only=$sr/CT-only" --sr "GTASR=$sr/GTASR" --sr "bundled=$sr/CT+TA-step1000" \
    --images "${GRID_IMAGES:-ILSVRC2012_val_00000067,ILSVRC2012_val_00000104}" \
    --box "${GRID_BOX:-64,64,128,128}" -o "$FIGURES/comparison.png" --overwrite

"$PY" scripts/results_table.py --results "$OUT" --runs "$RUNS" | tee "$OUT/tables.md"
