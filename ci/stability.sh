#!/usr/bin/env bash
# Runs the whole workspace under cargo-nextest again and again to show the tests carry no
# timing assumptions: RUNS times at each --test-threads value, then RUNS_HOG times beside a
# CPU hog (two busy loops, one per core). Prints one line per run and a tally; exits 1 if any
# run failed. Usage: bash ci/stability.sh [RUNS] [THREADS...]   (default: 20 runs at 1 2 8)
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}; shift || true
threads=("${@:-1 2 8}"); read -r -a threads <<<"${threads[*]}"
hog_runs=${RUNS_HOG:-1}
cargo nextest run --workspace --locked --no-run >/dev/null 2>&1 || { echo "build failed"; exit 1; }
log=$(mktemp -d)
failed=0 total=0
once() {  # label
  total=$((total + 1))
  local out="$log/run-$total.log"
  if cargo nextest run --workspace --locked --no-fail-fast "${@:2}" >"$out" 2>&1; then
    echo "$1: ok ($(grep -o '[0-9]* tests run: [0-9]* passed[^]]*' "$out" | tail -1))"
  else
    failed=$((failed + 1))
    echo "$1: FAILED: $(grep -E '^\s+FAIL' "$out" | sort -u | tr -s ' ' | head -5 | tr '\n' ';') (log: $out)"
  fi
}
for t in "${threads[@]}"; do
  for i in $(seq 1 "$runs"); do once "threads=$t run $i" --test-threads "$t"; done
done
hogs=()
for _ in 1 2; do (while :; do :; done) & hogs+=($!); done
trap 'kill "${hogs[@]}" 2>/dev/null' EXIT
for i in $(seq 1 "$hog_runs"); do once "beside a CPU hog, threads=8, run $i" --test-threads 8; done
kill "${hogs[@]}" 2>/dev/null
echo "stability: $((total - failed)) of $total runs passed"
[ "$failed" -eq 0 ]
