#!/usr/bin/env bash
# Train the five methods and the default network on the same RoadScene training pairs with the same budget
# (STEPS steps of batch 8, 256 x 256 crops, fusion loss only; MAFS without its pretext stage), then score them, the shipped default weights and
# the classical rules on the 45 held-out pairs.
#
#   bash scripts/same_budget.sh OUT SPLIT_DIR [STEPS]      # SPLIT_DIR from scripts/roadscene_split.py
set -uo pipefail
out=$1 split=$2 steps=${3:-600}
mkdir -p "$out"
common=(train.batch_size=8 train.crop=256 data.train.root="$split" data.train.split=train data.val.root="$split"
        data.val.split=val data.val.limit=4
        data.workers=2 data.cache=true log.progress=false log.val_every=0)
for method in seafusion psfusion mafs fgfusion dsifuse lite; do
  config=${method}_roadscene; [ "$method" = lite ] && config=lite
  extra=(train.iters="$steps")
  [ "$method" = seafusion ] && extra+=(train.epochs=null)
  [ "$method" = mafs ] && extra+=(train.epochs=null train.pretext.iters=0 train.pretext.epochs=null)
  [ "$method" = lite ] && extra+=(train.ema=0)
  taskfuse train "$config" --out "$out/runs" --name "$method" --set "${common[@]}" "${extra[@]}" \
    > "$out/$method.log" 2>&1 &
done
wait
bash "$(dirname "$0")/score_val.sh" "$out" "$split" lite-shipped=taskfuse/models/lite/lite.safetensors "$out"/runs/*/
