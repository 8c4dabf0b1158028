#!/usr/bin/env bash
# Train loss/width variants of the default network side by side on the RoadScene training split, then score
# every variant and the classical rules on the 45 held-out pairs (the evidence behind configs/lite.yaml).
# Without variants, the sweep that chose the shipped loss; a variant is NAME="key=value ..." (config keys).
#
#   bash scripts/lite_sweep.sh OUT SPLIT_DIR [ITERS] [NAME="key=value ..." ...]
#   # SPLIT_DIR from scripts/roadscene_split.py
set -uo pipefail
out=$1 split=$2 iters=${3:-3000}
shift $(($# < 3 ? $# : 3))
declare -A variants=()
if [ $# -eq 0 ]; then
  variants=(
    [w32]="model.width=32"
    [w48]="model.width=48"
    [w32_gain1.3]="model.width=32 loss.grad_gain=1.3"
    [w32_gain1.6]="model.width=32 loss.grad_gain=1.6"
    [w48_gain1.3]="model.width=48 loss.grad_gain=1.3"
    [w32_gain1.3_nossim]="model.width=32 loss.grad_gain=1.3 loss.ssim_weight=0"
  )
fi
for spec in "$@"; do variants[${spec%%=*}]=${spec#*=}; done
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$out"
for name in "${!variants[@]}"; do
  # shellcheck disable=SC2086
  taskfuse train lite --out "$out/runs" --name "$name" --set train.iters="$iters" data.train.root="$split" \
    data.val.root="$split" data.workers=2 data.cache=true log.progress=false log.val_every=0 \
    ${variants[$name]} > "$out/$name.log" 2>&1 &
done
wait
bash "$(dirname "$0")/score_val.sh" "$out" "$split" "$out"/runs/*/
