#!/usr/bin/env bash
# kiln vs llama.cpp on every row of issue #4's table, then the table.
#
#   bench/run_side_by_side.sh RESULTS_DIR [KILN_BIN]
#
# One bench/compare_llama.py run per model (kiln and llama.cpp alternating, one process per
# measurement): the default model, then the SmolLM2-135M, Qwen2.5-0.5B and Llama-3.2-1B shapes
# in Q8_0, Q4_0 and Q4_K_M (synthetic, made as in docs/performance.md "End to end vs llama.cpp").
# Each row's runs go to RESULTS_DIR/<row>.json; the table is printed from them at the end
# (and written to RESULTS_DIR/table.md). Run it on an idle machine: it takes ~30-60 min.
#
# KILN_BIN (default build/kiln) is copied to RESULTS_DIR/kiln first, so a rebuild during the
# run cannot change the binary being measured; RESULTS_DIR/meta.txt records the commit, the
# time and the load. Environment:
#   THREADS=2 P=512 N=128 REPS=2       compare_llama.py's -t -p -n -r
#   BANDWIDTH=1=20.1,2=30              read GB/s by thread count for the roofline column (default:
#                                      each row's highest read_gbs from its kiln bench runs)
#   ONLY=regex                         run only rows whose name matches (e.g. ONLY='llama32')
#   BENCH_DIR=~/.cache/kiln/bench      where the synthetic GGUFs are
#   KILN_CACHE=~/.cache/kiln           the default model is $KILN_CACHE/models/default.gguf
# Extra environment (e.g. KILN_GGML_EXACT=0) passes through to kiln.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || "$1" == -h || "$1" == --help ]]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$1
KILN_SRC=${2:-$ROOT/build/kiln}
THREADS=${THREADS:-2} P=${P:-512} N=${N:-128} REPS=${REPS:-2}
BANDWIDTH=${BANDWIDTH:-}
ONLY=${ONLY:-.}
B=${BENCH_DIR:-$HOME/.cache/kiln/bench}
DEFAULT=${KILN_CACHE:-$HOME/.cache/kiln}/models/default.gguf

[[ -x "$KILN_SRC" ]] || { echo "KILN_BIN: $KILN_SRC is not an executable" >&2; exit 2; }

# row name -> model file
ROWS=(default "$DEFAULT")
for shape in smollm2-135m qwen25-0.5b llama32-1b; do
  for t in Q8_0 Q4_0 Q4_K_M; do
    ROWS+=("$shape-$t" "$B/$shape-$t.gguf")
  done
done

selected=()
missing=0
for ((i = 0; i < ${#ROWS[@]}; i += 2)); do
  name=${ROWS[i]} model=${ROWS[i + 1]}
  [[ "$name" =~ $ONLY ]] || continue
  if [[ ! -f "$model" ]]; then
    echo "row $name: model file $model missing (see docs/performance.md, End to end vs llama.cpp)" >&2
    missing=1
  fi
  selected+=("$name" "$model")
done
[[ $missing == 0 ]] || exit 2
[[ ${#selected[@]} -gt 0 ]] || { echo "ONLY=$ONLY matches no row" >&2; exit 2; }

mkdir -p "$OUT"
cp "$KILN_SRC" "$OUT/kiln"
{
  echo "started: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "kiln: copy of $KILN_SRC ($(stat -c '%y' "$KILN_SRC"))"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
       "$(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed files in the tree"
  echo "args: -t $THREADS -p $P -n $N -r $REPS --bandwidth ${BANDWIDTH:-(kiln bench read_gbs)}"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/meta.txt"
cat "$OUT/meta.txt"

jsons=()
for ((i = 0; i < ${#selected[@]}; i += 2)); do
  name=${selected[i]} model=${selected[i + 1]}
  echo "== $name ($model) load $(cut -d' ' -f1 /proc/loadavg)" >&2
  python3 "$ROOT/bench/compare_llama.py" -m "$model" -t "$THREADS" -p "$P" -n "$N" -r "$REPS" \
      --kiln "$OUT/kiln" ${BANDWIDTH:+--bandwidth "$BANDWIDTH"} --json-out "$OUT/$name.json"
  jsons+=("$OUT/$name.json")
done
echo "finished: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/meta.txt"

echo
python3 "$ROOT/bench/compare_llama.py" --table-from "${jsons[@]}" | tee "$OUT/table.md"
