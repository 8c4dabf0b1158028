#!/usr/bin/env bash
# Train every method briefly through `taskfuse train`, on the synthetic labelled scenes (its own strategy) and on
# RoadScene pairs (fusion-only), and summarise steps/s and first/last losses from each run's metrics.csv.
#
#   bash scripts/short_runs.sh OUT_DIR ROADSCENE_DIR [STEPS] [extra --set overrides ...]
#
# STEPS (default 200) bounds every phase; SeAFusion runs two rounds, MAFS its three stages, each STEPS long.
# VAL (environment, default 16) is the number of validation images of every run; BATCH (environment, default:
# each paper's batch size) overrides the batch size, for a quick check on a CPU.
set -uo pipefail
out=$1 roadscene=$2 steps=${3:-200} val=${VAL:-16}
shift $(( $# < 3 ? $# : 3 ))
mkdir -p "$out"
declare -A length=(
  [psfusion]="train.iters=$steps"
  [fgfusion]="train.iters=$steps"
  [dsifuse]="train.iters=$steps"
  [seafusion]="train.rounds=2 train.seg_weight_per_round=[0,1] train.fusion.iters=$steps train.fusion.epochs=null train.segmentation.iters_per_round=$steps train.segmentation.max_iters=$((2 * steps)) train.segmentation.warmup_iters=0"
  [mafs]="train.iters=$steps train.epochs=null train.pretext.iters=$steps train.pretext.epochs=null train.teacher_training.iters=$steps train.teacher_training.warmup_iters=0"
)
declare -A fusion_only=(
  [seafusion]="train.iters=$steps train.epochs=null"
  [mafs]="train.iters=$steps train.epochs=null train.pretext.iters=$steps train.pretext.epochs=null"
)
batch=()
if [ -n "${BATCH:-}" ]; then batch=(train.batch_size="$BATCH"); fi
for method in seafusion psfusion mafs fgfusion dsifuse; do
  extra=("${batch[@]}")
  if [ -n "${BATCH:-}" ] && [ "$method" = seafusion ]; then
    extra+=(train.fusion.batch_size="$BATCH" train.segmentation.batch_size="$BATCH")
  fi
  # shellcheck disable=SC2086
  taskfuse train "${method}_synthetic" --out "$out" --name "${method}_synthetic" \
    --set ${length[$method]} data.val.length=$val log.progress=false "${extra[@]}" "$@" || echo "FAILED ${method}_synthetic"
  # shellcheck disable=SC2086
  taskfuse train "${method}_roadscene" --out "$out" --name "${method}_roadscene" \
    --set ${fusion_only[$method]:-train.iters=$steps} data.train.root="$roadscene" data.val.limit=$val \
    log.progress=false "${batch[@]}" "$@" || echo "FAILED ${method}_roadscene"
done
python - "$out" <<'PY'
import csv, json, sys
from pathlib import Path

rows = {}
for run in sorted(Path(sys.argv[1]).iterdir()):
    if not (run / "metrics.csv").exists():
        continue
    series: dict[str, list[tuple[int, float]]] = {}
    for r in csv.DictReader(open(run / "metrics.csv")):
        series.setdefault(r["name"], []).append((int(r["step"]), float(r["value"])))
    speed = [v for _, v in series.get("train/img_s", [])][1:]
    rows[run.name] = {
        "steps": max(s for v in series.values() for s, _ in v),
        "losses": {k: [v[0][1], v[-1][1]] for k, v in series.items() if k.endswith("total") or k.startswith("train/rec")},
        "img_s": sum(speed) / len(speed) if speed else None,
        "val": {k[4:]: v[-1][1] for k, v in series.items() if k.startswith("val/")},
    }
json.dump(rows, open(Path(sys.argv[1]) / "summary.json", "w"), indent=1)
for name, r in rows.items():
    losses = ", ".join(f"{k} {a:.4g} -> {b:.4g}" for k, (a, b) in r["losses"].items())
    val = ", ".join(f"{k} {v:.4g}" for k, v in r["val"].items())
    print(f"{name}: {r['steps']} steps, {r['img_s'] or 0:.1f} img/s; {losses}; val {val}")
PY
