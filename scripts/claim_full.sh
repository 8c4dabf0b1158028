#!/usr/bin/env bash
# The claim benchmark (taskfuse benchmark claim --scale full, docs/benchmark.md) on one GPU, in waves. Each call
# lists the units whose inputs are done (--plan), runs up to JOBS of them side by side, each stopped after LIMIT
# seconds, and prints how many units are left; every unit resumes, so calling it again continues, and a call
# with nothing left prints the table. One call fits a 10-minute command; repeat it until the table appears.
# Each piece gets one CPU thread (OMP_NUM_THREADS, unless set): many pieces with torch's default of one thread
# per core stalled the synthetic benchmark's pieces on 16 cores.
# Rows of released weights plug in when their files exist, e.g.
#   WEIGHTS="seafusion-released=/w/seafusion.safetensors tardal-released=/w/tardal.safetensors"
# SCALE and DEVICE override the preset and device (SCALE=tiny DEVICE=cpu checks the script on a CPU); PRETRAINED
# the detectors' backbone weights (default imagenet, from taskfuse[pretrained]; a .safetensors file; empty: none,
# as the CPU presets' detectors take none).
#
#   bash scripts/claim_full.sh OUT ROOT [LIMIT] [JOBS]
set -uo pipefail
out=$1 root=$2 limit=${3:-540} jobs=${4:-12}
design=(--out "$out" --root "$root" --scale "${SCALE:-full}" --device "${DEVICE:-cuda}" --no-progress)
pretrained=${PRETRAINED-imagenet}
[ -n "$pretrained" ] && design+=(--pretrained "$pretrained")
for row in ${WEIGHTS:-}; do
  if [ -f "${row#*=}" ]; then design+=(--weights "$row"); fi
done
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$out-logs"
mapfile -t ready < <(taskfuse benchmark claim "${design[@]}" --plan)
if [ "${#ready[@]}" -eq 0 ]; then
  taskfuse benchmark claim "${design[@]}" --report
  exit $?
fi
for unit in "${ready[@]:0:$jobs}"; do
  timeout "$limit" taskfuse benchmark claim "${design[@]}" --units "$unit" > "$out-logs/${unit//:/_}.log" 2>&1 &
done
wait
echo "units left: $(taskfuse benchmark claim "${design[@]}" --list | grep -c '^todo')"
