#!/usr/bin/env bash
# Scores a bundled-model candidate against bicubic and a baseline model (v2 unless BASE
# and BASE_NAME say otherwise) with one seed, on every set the bundled model's targets
# name, and draws the RealSet65 crop grid (bicubic | baseline | candidate). Tables and
# JSON go to ${OUT:-out/results-candidate}, the grid to
# ${FIGURES:-docs/images}/realset65-grid.png.
#
#   scripts/evaluate_candidate.sh                  # ft_s2 of scripts/train_cpu_tiny.sh
#   MODEL=runs/compact_s2/best.safetensors NAME=compact scripts/evaluate_candidate.sh scores
#   BASE=v2.1.safetensors BASE_NAME=v2.1 MODEL=... NAME=... scripts/evaluate_candidate.sh
#
# Sets: the 32 ImageNet-Test pairs and RealSet65 (NIQE) in ../shared/data, and the held-out
# photos as pairs of three degradations, made once with
#   gtasr make-testset --hr data-cache/photos-test -o data-cache/testset-photos
#   gtasr make-testset --hr data-cache/photos-test -o data-cache/testset-jpeg --preset jpeg
#   gtasr make-testset --hr data-cache/photos-test -o data-cache/testset-train --preset train
set -euo pipefail

PY=${PY:-.venv/bin/python}
GTASR=${GTASR:-.venv/bin/gtasr}
RUNS=${RUNS:-runs}
MODEL=${MODEL:-$RUNS/ft_s2/model.safetensors}
NAME=${NAME:-candidate}
BASE=${BASE:-$RUNS/ta_s2/best.safetensors}
BASE_NAME=${BASE_NAME:-v2}
OUT=${OUT:-out/results-candidate}
DATA=${DATA:-../shared/data}
HELD_OUT=${HELD_OUT:-data-cache}
FIGURES=${FIGURES:-docs/images}

scores() {
    local methods=(--model "$BASE_NAME=$BASE" --model "$NAME=$MODEL") set
    "$PY" bench/quality.py "${methods[@]}" --data "$DATA/imagenet-test-sample" \
        -o "$OUT/imagenet-test-sample" | tee "$OUT/imagenet-test-sample.md"
    for set in testset-photos testset-jpeg testset-train; do
        "$PY" bench/quality.py "${methods[@]}" --data "$HELD_OUT/$set" -o "$OUT/$set" |
            tee "$OUT/$set.md"
    done
    "$PY" bench/quality.py "${methods[@]}" --data none --no-reference "$DATA/realset65" \
        -o "$OUT/realset65" | tee "$OUT/realset65.md"
}

grid() {
    # Heavy JPEG blocks (0014), a drawing (comic1), an old print (oldphoto2) and two
    # photos; boxes in the pixels of the x4 outputs.
    local sr=$OUT/realset65 boxes=(256,256,192,192 128,128,192,192 224,224,192,192
        800,480,192,192 416,416,192,192)
    local args=()
    for box in "${boxes[@]}"; do args+=(--box "$box"); done
    "$GTASR" compare-grid --lq "$DATA/realset65" --sr "$BASE_NAME=$sr/$BASE_NAME-no-reference" \
        --sr "$NAME=$sr/$NAME-no-reference" --images 0014,comic1,oldphoto2,0032,ADE_val_00000114 \
        "${args[@]}" -o "$FIGURES/realset65-grid.png" --overwrite
}

mkdir -p "$OUT" "$FIGURES"
if (($# == 0)); then
    set -- scores grid
fi
for step in "$@"; do
    case $step in
        scores | grid) "$step" ;;
        *) echo "unknown step '$step' (scores grid)" >&2; exit 2 ;;
    esac
done
