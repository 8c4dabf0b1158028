#!/usr/bin/env bash
# The full-scale synthetic benchmark on one GPU, every row in its own piece side by side, each piece stopped
# after LIMIT seconds. Every stage resumes, so running the same command again into the same BENCH continues
# where the pieces stopped; a finished row is never redone. Prints the table once every row is in.
# Each piece gets one CPU thread (OMP_NUM_THREADS, unless set): thirteen pieces with torch's default of one
# thread per core put 16 cores under a load of 115 and not one row finished in 525 s.
#
#   bash scripts/synthetic_full.sh BENCH [LIMIT] [-- extra taskfuse benchmark options]
set -uo pipefail
bench=$1 limit=${2:-560}
shift $(($# < 2 ? $# : 2))
[ "${1:-}" = "--" ] && shift
piece() {
  timeout "$limit" taskfuse benchmark synthetic --scale full --device cuda --out "$bench" --no-progress \
    --rows "$@" > "$bench-logs/$1.log" 2>&1
}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$bench-logs"
piece ir vi "$@" &
sleep 30                                                  # the first piece renders the scenes
for rows in "mean max" "laplacian gff"; do
  # shellcheck disable=SC2086
  piece $rows "$@" &
done
for method in seafusion psfusion mafs fgfusion dsifuse; do
  for variant in fusion-only task-guided; do
    piece "$method-$variant" "$@" &
  done
done
wait
taskfuse benchmark synthetic --out "$bench" --report
