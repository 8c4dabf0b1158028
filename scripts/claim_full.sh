#!/usr/bin/env bash
# The claim benchmark (taskfuse benchmark claim, docs/benchmark.md) on one GPU, in calls of DEADLINE seconds.
# A call keeps up to JOBS units running side by side: every POLL seconds (10) it lists the units whose inputs are
# done (--plan) and starts them as slots free up (OUT-logs/started.log lists each start). At the deadline the
# running units are stopped; every unit resumes from its checkpoints, so calling again continues, and the call
# that finishes the last unit prints the table. A unit that fails is not started again: the call stops starting
# units, names it with the end of its log (OUT-logs/) and exits with 1, as it does when --plan refuses the design
# (OUT-logs/plan.log). Each unit gets one CPU thread (OMP_NUM_THREADS, unless set): many units with torch's
# default of one thread per core stalled the synthetic benchmark's pieces on 16 cores. A detector cell starts only
# once no training runs: a training's memory grows again when it fuses its images at the end (two FGFusion
# continuations held 27 GiB each then, where nine had shared 79 GiB while training), and cells started beside
# trainings ran the GPU out of memory twice. On a GPU a unit also starts only while the GPU has GPU_GIB free for
# it, counting GPU_GIB as taken for every unit started in the last 60 s (its memory is still growing).
#
#   bash scripts/claim_full.sh OUT ROOT [DEADLINE] [JOBS]        # repeat until it prints the table
#
# Environment (all optional):
#   SCALE       the preset (default full; SCALE=tiny DEVICE=cpu checks the script on a CPU)
#   DEVICE      default cuda
#   METHODS     the methods of the paired continuation (default: every method detection can guide)
#   INIT        per method, the weights its pre-trainings start from: "seafusion=/w/seafusion.safetensors"
#   WEIGHTS     rows of released weights, taken when their files exist:
#               "seafusion-released=/w/seafusion.safetensors tardal-released=/w/tardal.safetensors"
#   PRETRAINED  the detectors' backbone (default imagenet, from taskfuse[pretrained]; a .safetensors file;
#               empty: none, as the CPU presets' detectors take none)
#   REUSE       another claim folder whose cells this design shares (--reuse)
#   TASK_WEIGHT the scale of SeAFusion's task weight per round (--task-weight; default 1, the paper's)
#   FAST        1: the fusion trainings in channels_last and compiled (--fast)
#   HEAD_WARMUP steps of a task head's warm-up before its task-guided continuation (--head-warmup; default
#               the preset's)
#   ROWS        the rows to run (default all, the oracle included)
#   GPU_GIB     GPU memory a unit needs to start, in GiB (default 16; 0: start without asking nvidia-smi)
set -uo pipefail
out=${1:?usage: bash scripts/claim_full.sh OUT ROOT [DEADLINE] [JOBS]}
root=${2:?usage: bash scripts/claim_full.sh OUT ROOT [DEADLINE] [JOBS]}
deadline=${3:-540} jobs=${4:-12} poll=${POLL:-10}
device=${DEVICE:-cuda}
design=(benchmark claim --out "$out" --root "$root" --scale "${SCALE:-full}" --device "$device" --no-progress)
pretrained=${PRETRAINED-imagenet}
[ -n "$pretrained" ] && design+=(--pretrained "$pretrained")
read -r -a methods <<< "${METHODS:-}"
[ "${#methods[@]}" -gt 0 ] && design+=(--methods "${methods[@]}")
read -r -a init <<< "${INIT:-}"
[ "${#init[@]}" -gt 0 ] && design+=(--init "${init[@]}")
released=()
for row in ${WEIGHTS:-}; do
  if [ -f "${row#*=}" ]; then released+=("$row"); fi
done
[ "${#released[@]}" -gt 0 ] && design+=(--weights "${released[@]}")
[ -n "${TASK_WEIGHT:-}" ] && design+=(--task-weight "$TASK_WEIGHT")
[ "${FAST:-}" = 1 ] && design+=(--fast)
[ -n "${HEAD_WARMUP:-}" ] && design+=(--head-warmup "$HEAD_WARMUP")
read -r -a rows <<< "${ROWS:-}"
[ "${#rows[@]}" -gt 0 ] && rows=(--rows "${rows[@]}")
planned=("${design[@]}")
[ -n "${REUSE:-}" ] && planned+=(--reuse "$REUSE")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
start=$SECONDS
left() { echo $((deadline - (SECONDS - start))); }
need=${GPU_GIB:-16}
if [ "$device" = cpu ] || ! command -v nvidia-smi > /dev/null; then need=0; fi
gpu_room() {
  local free recent=0 t
  [ "$need" -eq 0 ] && { echo 1000000; return; }
  free=$(nvidia-smi -i "${gpu:-0}" --query-gpu=memory.free --format=csv,noheader,nounits 2>/dev/null) ||
    { echo 1000000; return; }
  for t in "${started[@]}"; do [ $((SECONDS - t)) -lt 60 ] && recent=$((recent + 1)); done
  echo $((${free%%[!0-9]*} / 1024 - recent * need))
}
gpu=${device#cuda}
gpu=${gpu#:}
mkdir -p "$out-logs"
declare -A running
failed=() started=()
while [ "$(left)" -gt 30 ] && [ "${#failed[@]}" -eq 0 ]; do
  if ! plan=$(taskfuse "${planned[@]}" "${rows[@]}" --plan 2>> "$out-logs/plan.log"); then
    echo "--plan failed; $out-logs/plan.log ends:" >&2
    tail -n 3 "$out-logs/plan.log" >&2
    exit 1
  fi
  mapfile -t ready < <(printf '%s' "$plan" | grep .)
  busy=0
  for pid in "${running[@]}"; do kill -0 "$pid" 2>/dev/null && busy=$((busy + 1)); done
  room=$(gpu_room)
  training=0
  for unit in "${!running[@]}"; do
    [[ $unit == *train:* ]] && kill -0 "${running[$unit]}" 2>/dev/null && training=1
  done
  for unit in "${ready[@]}"; do
    pid=${running[$unit]:-}
    if [ -n "$pid" ]; then
      kill -0 "$pid" 2>/dev/null && continue
      wait "$pid" || { failed+=("$unit"); continue; }
    fi
    [ "$busy" -ge "$jobs" ] || [ "$room" -lt "$need" ] && break
    [[ $unit == cell:* ]] && [ "$training" -eq 1 ] && continue
    timeout "$(($(left) - 20))" taskfuse "${design[@]}" --units "$unit" > "$out-logs/${unit//:/_}.log" 2>&1 &
    running[$unit]=$!
    echo "$(date -u +%FT%T) $unit" >> "$out-logs/started.log"
    busy=$((busy + 1)) room=$((room - need))
    started+=("$SECONDS")
  done
  if [ "${#ready[@]}" -eq 0 ] && [ "$busy" -eq 0 ]; then break; fi
  sleep "$poll"
done
wait
for unit in "${failed[@]}"; do
  echo "unit $unit failed (not started again; its log, $out-logs/${unit//:/_}.log, ends):" >&2
  tail -n 3 "$out-logs/${unit//:/_}.log" >&2
done
todo=$(taskfuse "${design[@]}" "${rows[@]}" --list | grep -c '^todo')
echo "units left: $todo"
if [ "$todo" -eq 0 ]; then taskfuse "${design[@]}" --report || exit 1; fi
[ "${#failed[@]}" -eq 0 ]
