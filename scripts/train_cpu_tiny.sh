#!/usr/bin/env bash
# GTASR-tiny and its ablations at equal compute (same photos, steps, batch and seed),
# trained on CPU with the cpu_tiny configs. Each run resumes where it stopped.
#
#   scripts/train_cpu_tiny.sh                      # all five runs, one after the other
#   scripts/train_cpu_tiny.sh ct_s1 ct_s2          # only these
#   GTASR_THREADS=1 scripts/train_cpu_tiny.sh ...  # e.g. two chains side by side on 2 cores
#
# Runs (under ${RUNS:-runs}/):
#   ct_s1       Stage I, L_CT only                     (ablation a, first stage)
#   ct_s2       Stage II from ct_s1, DTM only (CTMSR)  (ablation a)
#   ta_s1       Stage I, L_CT + L_TA                   (ablation b)
#   ta_s1_1000  ta_s1 stopped after step 1000; its best.safetensors is the bundled model
#   gtasr_s2    Stage II from ta_s1, L_Rect with gradient (ablation c: full GTASR)
#   release_s2  Stage II from ta_s1, L_Rect without gradient, as released (ablation d)
#
# Needs data-cache/photos and data-cache/testset-photos:
#   gtasr fetch-photos -o data-cache/photos
#   gtasr make-testset --hr data-cache/photos-test -o data-cache/testset-photos
set -euo pipefail

GTASR=${GTASR:-.venv/bin/gtasr}
RUNS=${RUNS:-runs}
THREADS=${GTASR_THREADS:-null}

train() {
    local out=$1
    shift
    local resume=()
    [[ -d $out/checkpoints ]] && resume=(--resume)
    "$GTASR" train "$@" --set "train.threads=$THREADS" -o "$out" "${resume[@]}"
}

run() {
    case $1 in
        ct_s1) train "$RUNS/ct_s1" configs/cpu_tiny_stage1.yaml --set loss.ta_weight=0 ;;
        ta_s1) train "$RUNS/ta_s1" configs/cpu_tiny_stage1.yaml ;;
        ta_s1_1000)
            [[ -e $RUNS/ta_s1_1000/best.json ]] && return 0  # done: --max-steps would go on
            train "$RUNS/ta_s1_1000" configs/cpu_tiny_stage1.yaml --max-steps 1000 ;;
        ct_s2)
            train "$RUNS/ct_s2" configs/cpu_tiny_stage2.yaml --set "init_from=$RUNS/ct_s1" \
                --set loss.stab_weight=0 --set loss.rect_weight=0 --set loss.rect_gradient=false ;;
        gtasr_s2) train "$RUNS/gtasr_s2" configs/cpu_tiny_stage2.yaml --set "init_from=$RUNS/ta_s1" ;;
        release_s2)
            train "$RUNS/release_s2" configs/cpu_tiny_stage2.yaml --set "init_from=$RUNS/ta_s1" \
                --set loss.rect_gradient=false ;;
        *) echo "unknown run '$1' (ct_s1 ct_s2 ta_s1 ta_s1_1000 gtasr_s2 release_s2)" >&2; exit 2 ;;
    esac
}

if (($# == 0)); then
    set -- ct_s1 ct_s2 ta_s1_1000 ta_s1 gtasr_s2 release_s2
fi
for name in "$@"; do
    run "$name"
done
