#!/usr/bin/env bash
# Training speed of every method as given and fast with CUDA graphs (scripts/train_speed.py --compare
# --fast-compile-mode reduce-overhead, which also gives the loss change), one piece per method or method:phase, in
# calls of DEADLINE seconds. A piece writes OUT/<method>[-<phase>]/train_speed.{json,md}; a finished piece is
# skipped, so calling again continues with the next. A piece gets the time left in the call (it is stopped at the
# deadline and starts again in the next call; torch.compile's on-disk cache then spares most of its compiling).
# MAFS is split by phase: compiling all three of its phases does not fit one call.
#
#   bash scripts/train_speed_all.sh OUT [DEADLINE]        # repeat until it prints "all pieces done"
#
# Environment (all optional):
#   ITEMS   the pieces (default below); "method" times every phase, "method:phase" one
#   DEVICE  default cuda
#   EXTRA   more train_speed.py arguments (default: --steps 20 --warmup 8 --scenes 32)
set -uo pipefail
out=${1:?usage: bash scripts/train_speed_all.sh OUT [DEADLINE]}
deadline=${2:-540}
read -r -a items <<< "${ITEMS:-dsifuse fgfusion seafusion psfusion mafs:pretext mafs:teacher mafs:train lite tardal}"
read -r -a extra <<< "${EXTRA:---steps 20 --warmup 8 --scenes 32}"
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
start=$SECONDS
for item in "${items[@]}"; do
  method=${item%%:*}
  phase=${item#"$method"}
  phase=${phase#:}
  piece=$out/$method${phase:+-$phase}
  [ -f "$piece/train_speed.json" ] && continue
  left=$((deadline - (SECONDS - start)))
  if [ "$left" -lt 60 ]; then
    echo "deadline: $item and the pieces after it are left for the next call"
    exit 0
  fi
  echo "$(date -u +%FT%T) $item ($left s left)"
  rm -rf "$piece.part"
  timeout "$left" python "$here/train_speed.py" --device "${DEVICE:-cuda}" --compare --fast-compile-mode reduce-overhead \
    --methods "$method" ${phase:+--phases "$phase"} "${extra[@]}" --out "$piece.part" > "$piece.log" 2>&1
  status=$?
  if [ "$status" -eq 124 ]; then
    echo "deadline: $item stopped; it starts again in the next call"
    exit 0
  elif [ "$status" -ne 0 ]; then
    echo "$item: failed with status $status; the end of $piece.log:"
    tail -n 5 "$piece.log"
    exit "$status"
  fi
  mv "$piece.part" "$piece"
  grep "^| $method " "$piece/train_speed.md"
done
echo "all pieces done: $out/*/train_speed.md"
