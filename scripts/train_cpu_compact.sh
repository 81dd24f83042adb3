#!/usr/bin/env bash
# The bundled model v3.1: GTASR-compact, Stage I (L_CT + L_TA) then Stage II (DTM + Stab +
# L_Rect with gradient), trained on CPU with the cpu_compact configs. Stage I stops at step
# 43000 of its 60000-step schedule (just past the second lr cut), Stage II at step 800 of
# 1200; about 7.6 CPU-hours in all (v3 was the same with Stage I stopped at step 25000).
# Each run resumes where it stopped, so the schedule can span several sittings; stop it
# with Ctrl-C or SIGTERM, which writes a checkpoint first.
#
#   scripts/train_cpu_compact.sh                 # Stage I, then Stage II
#   scripts/train_cpu_compact.sh compact_s2      # only Stage II
#   GTASR_THREADS=1 scripts/train_cpu_compact.sh # one thread (the other core stays free)
#
# Runs (under ${RUNS:-runs}/): compact_s1 (Stage I) and compact_s2 (Stage II from
# compact_s1's step 43000); compact_s2's best.safetensors (the best held-out validation
# within 0.5 dB of bicubic's PSNR-Y) becomes the bundled model with
#   python scripts/bundle_model.py runs/compact_s1 runs/compact_s2 --file best --half \
#       --description "GTASR-compact v3.1, ..."
#
# Needs data-cache/photos and data-cache/testset-photos (PHOTOS and VAL override them):
#   gtasr fetch-photos -o data-cache/photos
#   gtasr make-testset --hr data-cache/photos-test -o data-cache/testset-photos
set -euo pipefail

GTASR=${GTASR:-.venv/bin/gtasr}
RUNS=${RUNS:-runs}
THREADS=${GTASR_THREADS:-null}
PHOTOS=${PHOTOS:-data-cache/photos}
VAL=${VAL:-data-cache/testset-photos}
STAGE1_STEPS=43000

train() {
    local out=$1
    shift
    local resume=()
    [[ -d $out/checkpoints ]] && resume=(--resume)
    "$GTASR" train "$@" --set "train.threads=$THREADS" --set "data.hr_dirs=[$PHOTOS]" \
        --set "data.val_dir=$VAL" -o "$out" "${resume[@]}"
}

run() {
    case $1 in
        compact_s1)
            train "$RUNS/compact_s1" configs/cpu_compact_stage1.yaml --until-step "$STAGE1_STEPS"
            ;;
        compact_s2)
            train "$RUNS/compact_s2" configs/cpu_compact_stage2.yaml --until-step 800 \
                --set "init_from=$RUNS/compact_s1/checkpoints/step-$(printf %08d "$STAGE1_STEPS")"
            ;;
        *) echo "unknown run '$1' (compact_s1 compact_s2)" >&2; exit 2 ;;
    esac
}

if (($# == 0)); then
    set -- compact_s1 compact_s2
fi
for name in "$@"; do
    run "$name"
done
