#!/usr/bin/env bash
# The built-in default model from scratch on one GPU, and the benchmark that chooses the shipped weights
# (taskfuse/models/lite/MODEL_CARD.md), in pieces that each fit one command of a few minutes:
#
# 1. stage A: taskfuse train lite (configs/lite.yaml) on the RoadScene and MSRS training pairs;
# 2. taskfuse benchmark claim --scale session --methods lite: three fusion seeds pre-trained on the MSRS training
#    pairs from the stage-A weights, each continued with a detector in the loop (lite_msrs_det.yaml), without it
#    (the fusion-only twin) and without it under another seed (the noise floor); every row (ir, vi, max, the
#    shipped default, the released SeAFusion and TarDAL weights, the three variants) judged by a YOLOX-S on ImageNet
#    EfficientNet-Lite0 trained on its training images and scored on the MSRS validation pairs.
#
# Stage A runs first; then scripts/claim_full.sh runs the benchmark's units side by side (at most JOBS at a time,
# one CPU thread each; logs in OUT/claim-logs/) and stops at the first unit that fails, naming it, and the script
# exits with 1. After DEADLINE seconds whatever runs is stopped (each resumes from its checkpoints) and OUT.tgz is
# written beside OUT: what a next call needs to continue (records, cells, predictions, the small fusion networks' checkpoints),
# without images or detector checkpoints. Unpack it into the parent of OUT in the next call and run the script again:
#
#   python scripts/gpu_pack.py --out .cache/gpu                        # once, where the data are
#   bash scripts/default_model.sh runs/default .cache/gpu 480 6         # repeat until it prints the table
#
# DEVICE (default cuda) and SCALE (default session; tiny checks the script on a CPU) override the device and the
# benchmark's preset; PRETRAINED the detectors' backbone file (empty: none); STAGE_A_SET adds --set overrides to
# stage A (e.g. train.iters=4 for a check); STAGE_A=FILE skips stage A and starts the benchmark from those weights
# (STAGE_A=taskfuse/models/lite/lite.safetensors: the shipped weights, trained by lite.yaml on a CPU); REUSE=DIR
# copies the IR, VIS and max cells of another claim folder made with the same data and detector, and those of
# the default and released rows made with the same weights (--reuse).
set -uo pipefail
out=${1:?usage: bash scripts/default_model.sh OUT DATA [DEADLINE] [JOBS]}
data=${2:?usage: bash scripts/default_model.sh OUT DATA [DEADLINE] [JOBS]}
deadline=${3:-480} jobs=${4:-6}
device=${DEVICE:-cuda}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
start=$SECONDS
left() { echo $((deadline - (SECONDS - start))); }
mkdir -p "$out/logs"
data=$(cd "$data" && pwd)

stage_a() {
  local final=$out/stage_a.safetensors run
  [ -f "$final" ] && return 0
  run=$(find "$out/stage_a" -maxdepth 1 -name 'lite-*' -type d 2>/dev/null | sort | tail -1)
  if [ -n "$run" ] && [ -d "$run/checkpoints" ]; then
    timeout "$(left)" taskfuse train --resume "$run" --device "$device" || return $?
  else
    read -r -a extra <<< "${STAGE_A_SET:-}"
    timeout "$(left)" taskfuse train lite --out "$out/stage_a" --device "$device" --set \
      "data.train.root=$data/rs_split" data.val=null log.best=null \
      "data.train.mix=[{name: msrs_det, root: $data/msrs_det, split: train, options: {labels: false}}]" \
      log.progress=false log.keep=1 data.workers=3 "${extra[@]}" || return $?
    run=$(find "$out/stage_a" -maxdepth 1 -name 'lite-*' -type d | sort | tail -1)
  fi
  cp "$run/fusion.safetensors" "$final.part" && mv "$final.part" "$final" && rm -rf "$run/checkpoints"
}

if [ -n "${STAGE_A:-}" ]; then
  if [ ! -f "$out/stage_a.safetensors" ]; then
    cp "$STAGE_A" "$out/stage_a.safetensors.part" && mv "$out/stage_a.safetensors.part" "$out/stage_a.safetensors"
  elif ! cmp -s "$STAGE_A" "$out/stage_a.safetensors"; then
    echo "$out/stage_a.safetensors differs from STAGE_A=$STAGE_A; use another OUT" >&2
    exit 2
  fi
fi
status=0
stage_a > "$out/logs/stage_a.log" 2>&1
done_a=$?
if [ "$done_a" -eq 124 ]; then
  echo "stage A: time is up; it resumes in the next call" >&2
elif [ "$done_a" -ne 0 ]; then
  echo "stage A failed; its log, $out/logs/stage_a.log, ends:" >&2
  tail -n 3 "$out/logs/stage_a.log" >&2
  status=1
elif [ "$(left)" -gt 60 ]; then
  SCALE=${SCALE:-session} DEVICE=$device METHODS=lite INIT="lite=$out/stage_a.safetensors" \
    WEIGHTS="seafusion-released=$data/seafusion-released.safetensors tardal-released=$data/tardal-released.safetensors" \
    PRETRAINED=${PRETRAINED-$data/effnet-lite0.safetensors} REUSE=${REUSE:-} \
    ROWS="ir vi max lite seafusion-released tardal-released lite-fusion-only lite-task-guided lite-reseed" \
    bash "$(dirname "$0")/claim_full.sh" "$out/claim" "$data/msrs_det" "$(left)" "$jobs" || status=$?
fi
tar czf "$out.tgz" -C "$(dirname "$out")" --exclude='*.png' --exclude='*.jpg' --exclude='inputs' \
  --exclude='checkpoint' --exclude='detector.safetensors' --exclude='*.lock' --exclude='runs/*/checkpoints' \
  "$(basename "$out")"
ls -la "$out.tgz"
exit "$status"
