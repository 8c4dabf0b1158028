#!/usr/bin/env bash
# Fuse the held-out RoadScene pairs with the classical rules and with the fusion.safetensors of every run folder
# given, then score them all in one table (EN SD SF AG MI SCD VIF Qabf SSIM). Used by lite_sweep.sh and
# same_budget.sh; runs are named after their folder without its date stamp.
#
#   bash scripts/score_val.sh OUT SPLIT_DIR [NAME=WEIGHTS ...] [RUN_DIR ...]
set -uo pipefail
out=$1 split=$2
shift 2
fuse() { taskfuse fuse --ir "$split/val/ir" --vi "$split/val/vi" --out "$out/fused/$1" "${@:2}" > /dev/null; }
fused=()
for m in mean max laplacian gff; do
  fuse "$m" --method "$m" && fused+=("$m=$out/fused/$m")
done
for item in "$@"; do
  if [[ $item == *=* ]]; then
    name=${item%%=*} weights=${item#*=}
  else
    name=$(basename "$item"); name=${name%%-20*} weights=$item/fusion.safetensors
  fi
  [ -f "$weights" ] || { echo "no weights for $name ($weights)"; continue; }
  fuse "$name" --weights "$weights" && fused+=("$name=$out/fused/$name")
done
taskfuse evaluate fusion --ir "$split/val/ir" --vi "$split/val/vi" --fused "${fused[@]}" --out "$out/eval" \
  --metrics EN SD SF AG MI SCD VIF Qabf SSIM
