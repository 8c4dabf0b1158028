#!/usr/bin/env bash
# Pack a claim folder (taskfuse benchmark claim, docs/benchmark.md) for copying off a machine, in files of at
# most PART each (split's sizes: 15M, the default, or 500K). DEST/state.tgz.NN holds the design, records, logs,
# cells, scores and predictions (no images: a later call of scripts/claim_full.sh fuses again from the weights
# what it needs, and the detector reports' figures and samples stay behind); DEST/weights.tgz.NN the weights the
# records name: each pre-training's plateau weights and each continuation's final weights (no checkpoints:
# finished runs need none).
#
#   bash scripts/claim_pack.sh OUT DEST [PART]
#   cat DEST/state.tgz.* | tar xz -C PARENT_OF_OUT && cat DEST/weights.tgz.* | tar xz -C PARENT_OF_OUT
set -euo pipefail
out=${1:?usage: bash scripts/claim_pack.sh OUT DEST [PART]}
dest=${2:?usage: bash scripts/claim_pack.sh OUT DEST [PART]}
part=${3:-15M}
out=${out%/}
parent=$(dirname "$out") name=$(basename "$out")
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
cd "$parent"
logs=()
[ -d "$name-logs" ] && logs=("$name-logs")
tar czf - --exclude="$name/fused" --exclude="$name/locks" --exclude='*.safetensors' --exclude='*.pt' \
  --exclude="$name/downstream/*/*/samples" --exclude="$name/downstream/*/*/*/samples" \
  --exclude='report.html' --exclude='grid.png' "$name" "${logs[@]}" | split -b "$part" -d - "$dest/state.tgz."
{
  find "$name/pretrain" -maxdepth 1 -name '*.safetensors' -print0 2>/dev/null
  find "$name/runs" -mindepth 2 -maxdepth 2 -name '*.safetensors' -print0 2>/dev/null
} |
  tar czf - --null -T - | split -b "$part" -d - "$dest/weights.tgz."
ls -l "$dest"
