#!/usr/bin/env bash
# How often the gate fails an unchanged tree: runs ci/bench-gate.sh N times (default 10) with
# HEAD as the base of the committed work tree, and counts the runs each tier failed.
#   ci/bench-false-alarms.sh [N] [GATE FLAGS...]      e.g. ci/bench-false-alarms.sh 10 --quick
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}; shift || true
[ -z "$(git status --porcelain --untracked-files=no)" ] || { echo "commit first: the candidate must equal HEAD" >&2; exit 2; }
out=$(mktemp -d)
wall=0 instructions=0
for i in $(seq 1 "$runs"); do
  code=0
  RELIABILITY_OUTPUT_DIR="$out" bash ci/bench-gate.sh HEAD "$@" >"$out/run-$i.txt" 2>"$out/run-$i.err" || code=$?
  [ "$code" -le 1 ] || { echo "run $i: the gate could not measure (exit $code); see $out/run-$i.err" >&2; exit 3; }
  cp "$out/bench.json" "$out/bench-$i.json"
  w=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sum(r['verdict']=='regressed' for r in d['benches'] if r['tier']=='wall'))" "$out/bench-$i.json")
  n=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sum(r['verdict']=='regressed' for r in d['benches'] if r['tier']=='instructions'))" "$out/bench-$i.json")
  [ "$w" -eq 0 ] || wall=$((wall + 1))
  [ "$n" -eq 0 ] || instructions=$((instructions + 1))
  echo "run $i: exit $code, wall benches regressed: $w, instruction benches regressed: $n"
done
echo "false alarms in $runs runs of an unchanged tree: wall $wall, instructions $instructions (reports in $out)"
