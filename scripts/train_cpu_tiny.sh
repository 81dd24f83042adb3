#!/usr/bin/env bash
# GTASR-tiny and the CT-only ablation (same photos, crops, batch and seed), trained on
# CPU with the cpu_tiny configs. Each run resumes where it stopped.
#
#   scripts/train_cpu_tiny.sh                      # every run, one after the other
#   scripts/train_cpu_tiny.sh ct_s1 ct_s2          # only these
#   GTASR_THREADS=1 scripts/train_cpu_tiny.sh ...  # e.g. two chains side by side on 2 cores
#
# Runs (under ${RUNS:-runs}/):
#   ct_s1     Stage I, L_CT only, stopped at step $CT_STEPS      (CT-only, first stage)
#   ta_s1     Stage I, L_CT + L_TA, all its iterations; its checkpoint at step $TA_STEPS is
#             the GTASR arm's Stage I
#   ta_s2     Stage II from ta_s1's end, DTM + Stab + L_Rect with gradient: its
#             best.safetensors is the bundled model v2
#   ft_s1     Stage I fine-tuning of v2 on 128 px crops (batch 2, the pixels of 64 px x 8),
#             lr 1.5e-4, N = 3, stopped at step $FT_STEPS
#   ft_s2     Stage II from ft_s1 at step $FT_STEPS, on 128 px crops too: its
#             model.safetensors is the bundled model v2.1 (docs/training-diagnosis.md, Finding 12)
#   ct_s2     Stage II from ct_s1, DTM only                      (CT-only = CTMSR)
#   gtasr_s2  Stage II from ta_s1 at step $TA_STEPS, DTM + Stab + L_Rect with gradient
#             (full GTASR at the compute of ct_s1 + ct_s2)
#
# The ablation's two Stage I runs have about equal CPU time (docs/results.md): on one
# thread of a 2-core AMD EPYC with AVX512-BF16 (bf16 autocast), 22000 CT-only steps took
# about as long as ta_s1 to step 10250, which ran partly on two threads.
#
# Needs data-cache/photos (the 105 training photos, for ft_s1 and ft_s2),
# data-cache/photos-v2 (the 42 of them from the five packages v2 was trained on, for the
# other runs) and data-cache/testset-photos:
#   gtasr fetch-photos -o data-cache/photos
#   gtasr fetch-photos -o data-cache/photos-v2 --packages "$V2_PACKAGES"  # (set below)
#   gtasr make-testset --hr data-cache/photos-test -o data-cache/testset-photos
set -euo pipefail

GTASR=${GTASR:-.venv/bin/gtasr}
RUNS=${RUNS:-runs}
THREADS=${GTASR_THREADS:-null}
CT_STEPS=${CT_STEPS:-22000}
TA_STEPS=${TA_STEPS:-10250}
FT_STEPS=${FT_STEPS:-1500}
V2_PACKAGES=lomiri-wallpapers-16.04,lomiri-wallpapers-20.04,lxqt-themes,mate-backgrounds
V2_PACKAGES+=,plasma-workspace-wallpapers
V2_PHOTOS=(--set "data.hr_dirs=[${PHOTOS_V2:-data-cache/photos-v2}]")
CROPS_128=(--set data.crop_size=128 --set train.batch_size=2)

train() {
    local out=$1
    shift
    local resume=()
    [[ -d $out/checkpoints ]] && resume=(--resume)
    "$GTASR" train "$@" --set "train.threads=$THREADS" -o "$out" "${resume[@]}"
}

stage2() {
    local out=$1 from=$2
    shift 2
    train "$RUNS/$out" configs/cpu_tiny_stage2.yaml --set "init_from=$from" "$@"
}

run() {
    case $1 in
        ct_s1)
            train "$RUNS/ct_s1" configs/cpu_tiny_stage1.yaml "${V2_PHOTOS[@]}" \
                --set loss.ta_weight=0 --until-step "$CT_STEPS" ;;
        ta_s1)
            # A stop at TA_STEPS first, so that its checkpoint is written for gtasr_s2; every
            # checkpoint is kept (23 MB each), however long the schedule.
            local ta=(configs/cpu_tiny_stage1.yaml "${V2_PHOTOS[@]}"
                --set train.keep_checkpoints=100000)
            train "$RUNS/ta_s1" "${ta[@]}" --until-step "$TA_STEPS"
            train "$RUNS/ta_s1" "${ta[@]}" ;;
        ta_s2) stage2 ta_s2 "$RUNS/ta_s1" "${V2_PHOTOS[@]}" ;;
        ct_s2)
            stage2 ct_s2 "$RUNS/ct_s1" "${V2_PHOTOS[@]}" --set loss.stab_weight=0 \
                --set loss.rect_weight=0 --set loss.rect_gradient=false ;;
        gtasr_s2)
            stage2 gtasr_s2 "$RUNS/ta_s1/checkpoints/step-$(printf %08d "$TA_STEPS")" \
                "${V2_PHOTOS[@]}" ;;
        ft_s1)
            # The lr schedule of a 6000-step run (cut at 4500), stopped at FT_STEPS.
            train "$RUNS/ft_s1" configs/cpu_tiny_stage1.yaml \
                --set "init_from=$RUNS/ta_s2/best.safetensors" "${CROPS_128[@]}" \
                --set train.lr=1.5e-4 --set 'train.lr_milestones=[4500]' \
                --set train.iterations=6000 --set 'schedule.num_intervals=[3]' \
                --until-step "$FT_STEPS" ;;
        ft_s2)
            stage2 ft_s2 "$RUNS/ft_s1/checkpoints/step-$(printf %08d "$FT_STEPS")" \
                "${CROPS_128[@]}" ;;
        *) echo "unknown run '$1' (ct_s1 ta_s1 ta_s2 ct_s2 gtasr_s2 ft_s1 ft_s2)" >&2; exit 2 ;;
    esac
}

if (($# == 0)); then
    set -- ct_s1 ta_s1 ta_s2 ft_s1 ft_s2 ct_s2 gtasr_s2
fi
for name in "$@"; do
    run "$name"
done
