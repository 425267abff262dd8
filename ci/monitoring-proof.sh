#!/usr/bin/env bash
# The dashboards and rules proven against real data (issue #15). Starts the monitoring stack
# from the Debian binaries (monitoring/stack.py: Prometheus scraping every second, Pushgateway,
# Alertmanager) and a standalone testbed, runs the e2e suites against that testbed pushing to
# the gateway, runs a short load plan watching the testbed and pushing too, then evaluates every
# panel query, template variable, recording rule and alert expression (monitoring/proof.py live).
# Then it breaks things on purpose and requires the proof to catch each: a misspelt metric in a
# panel, a misspelt metric in an alert, and a repeated panel id.
# Usage: bash ci/monitoring-proof.sh   (PYTHON: an interpreter with PyYAML; default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
fail() { printf 'ci/monitoring-proof.sh: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d)
testbed_pid=""
app_pid=""
cleanup() {
  "$PYTHON" monitoring/stack.py stop "$work/stack" >/dev/null 2>&1 || true
  [ -n "$testbed_pid" ] && kill "$testbed_pid" 2>/dev/null || true
  [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --locked -q -p reliability-load --bin load
cargo build --locked -q -p reliability-client --example traced_app
# shellcheck source=ci/testbed.sh
. ci/testbed.sh
start_testbed "$work/testbed.log"
base=$testbed_base

# A running application traced by the reference client, serving its health for the `client`
# job. Its first 3 evaluation batches are answered 500, so its API-error series hold real
# errors; it generates for 5 s, shuts down, and goes on serving its final counts.
curl -sf -X PUT -H 'content-type: application/json' "$base/api/v1/faults?endpoint=evaluations" \
  -d '{"rules": [{"when": {"requests": {"from": 0, "to": 3}}, "action": {"kind": "status", "code": 500}}]}' >/dev/null \
  || fail "could not set the testbed's evaluations fault plan"
target/debug/examples/traced_app --backend "$base" --seconds 5 --linger 3600 >"$work/app.log" 2>&1 &
app_pid=$!
client_url=""
for _ in $(seq 1 600); do
  client_url=$(sed -n 's/^client metrics on //p' "$work/app.log")
  [ -n "$client_url" ] && break
  kill -0 "$app_pid" 2>/dev/null || fail "traced_app exited: $(cat "$work/app.log")"
  sleep 0.1
done
[ -n "$client_url" ] || fail "traced_app printed no metrics URL: $(cat "$work/app.log")"
client_addr=${client_url#http://}
client_addr=${client_addr%/metrics}

eval "$("$PYTHON" monitoring/stack.py start "$work/stack" --interval 1s --testbed "${base#http://}" --client "$client_addr" --env)"
echo "stack: prometheus $STACK_PROMETHEUS_URL, pushgateway $STACK_PUSHGATEWAY_URL, testbed $base"

# The suites, pushing what the overview, performance and end-to-end dashboards read.
RELIABILITY_TARGET=remote \
RELIABILITY_TARGET_ENDPOINT="$base/v1/traces" \
RELIABILITY_TARGET_QUERY_URL="$base/api/v1" \
PROMETHEUS_PUSHGATEWAY_URL="$STACK_PUSHGATEWAY_URL" \
  cargo test --locked -q --test reliability -- --include e2e --pushgateway-label branch=proof

# The application is done before the trace fault plan below (its spans must not take the
# faulted requests): wait for its final line (bounded).
for _ in $(seq 1 1200); do
  grep -q '^done: ' "$work/app.log" && break
  kill -0 "$app_pid" 2>/dev/null || fail "traced_app exited: $(cat "$work/app.log")"
  sleep 0.1
done
grep -q '^done: ' "$work/app.log" || fail "traced_app never finished: $(cat "$work/app.log")"
grep '^done: ' "$work/app.log"
scraped=$(curl -sf "$client_url")
printf '%s\n' "$scraped" | grep -q '^reliability_client_side_api_errors_total{endpoint="evaluations",status="500"} 3$' \
  || fail "the client's scrape shows no 3 evaluation API errors: $(printf '%s\n' "$scraped" | grep api_errors)"

# A short load plan against the same testbed, watching it, pushing what the load dashboard reads.
cat >"$work/plan.yaml" <<EOF
name: proof
seed: 7
target:
  endpoint: $base/v1/traces
  protocol: protobuf
pipeline: raw
workload:
  executor: constant-arrival-rate
  rate: 200
  duration: 3s
  max-in-flight: 16
watch: {pid: $testbed_pid}
thresholds: ["error_rate < 0.5"]
EOF
# Its first 5 export requests are answered with a partial success refusing 2 spans each: the
# testbed's rejected-spans series and the load tool's rejected fate then hold real refusals.
curl -sf -X PUT -H 'content-type: application/json' "$base/api/v1/faults" -d '{"rules": [{"when": {"requests": {"from": 0, "to": 5}}, "action": {"kind": "partial_success", "rejected": 2, "message": "refused by the proof"}}]}' >/dev/null \
  || fail "could not set the testbed's fault plan"
target/debug/load run "$work/plan.yaml" --out "$work/load" \
  --pushgateway "$STACK_PUSHGATEWAY_URL" --pushgateway-label branch=proof
rejected=$(curl -sf "$base/metrics" | awk '/^testbed_spans_rejected_total/ { n += $2 } END { print n + 0 }')
[ "$rejected" -eq 10 ] || fail "the testbed counted $rejected rejected spans, expected 5 requests x 2"

# Every query and expression against that data.
"$PYTHON" monitoring/proof.py live --prometheus "$STACK_PROMETHEUS_URL" --json "$work/proof.json"
"$PYTHON" - "$work/proof.json" <<'EOF'
import json, sys
result = json.load(open(sys.argv[1]))
counts = result["evaluated"]
assert not result["failures"], result["failures"]
for kind in ("panel_queries", "variable_queries", "recording_rules", "alert_rules", "alert_metrics"):
    assert counts[kind] > 0, f"evaluated no {kind}: {counts}"
print("proof: evaluated " + ", ".join(f"{v} {k}" for k, v in counts.items()))
EOF

# Broken on purpose: each must fail the proof, with the failure where it was planted.
broken() {  # name, expected exit, python check of the JSON, proof.py args...
  local name=$1 want=$2 check=$3 rc=0; shift 3
  "$PYTHON" monitoring/proof.py "$@" --json "$work/$name.json" >"$work/$name.out" 2>&1 || rc=$?
  [ "$rc" -eq "$want" ] || fail "$name: proof.py exited $rc, expected $want: $(cat "$work/$name.out")"
  "$PYTHON" -c "import json, sys; f = json.load(open(sys.argv[1]))['failures']; $check" "$work/$name.json" \
    || fail "$name: the failures are not the planted ones: $(cat "$work/$name.json")"
  echo "broken on purpose ($name): caught"
}
mkdir -p "$work/panel" "$work/rules" "$work/layout"
cp monitoring/grafana/dashboards/*.json "$work/panel/"
planted=$(grep -c 'reliability_spans_delivered{' "$work/panel/e2e-delivery.json")
sed -i 's/reliability_spans_delivered{/reliability_spans_delivred{/' "$work/panel/e2e-delivery.json"
broken misspelt-panel 1 \
  "assert len(f) == $planted and all(x['kind'] == 'panel' and 'reliability_spans_delivred' in x['expr'] and x['error'] == 'empty result' for x in f), f" \
  live --prometheus "$STACK_PROMETHEUS_URL" --dashboards "$work/panel"
cp monitoring/prometheus/rules/*.yml "$work/rules/"
sed -i 's/expr: reliability_test_heap_growth_bytes >/expr: reliability_test_heap_grwoth_bytes >/' "$work/rules/reliability.rules.yml"
grep -q heap_grwoth "$work/rules/reliability.rules.yml" || fail "the alert to break was not found"
broken misspelt-alert 1 \
  "assert len(f) == 1 and f[0]['kind'] == 'alert_rule' and f[0]['where'].endswith('ReliabilityTestHeapGrowth'), f" \
  live --prometheus "$STACK_PROMETHEUS_URL" --rules "$work/rules"
cp monitoring/grafana/dashboards/*.json "$work/layout/"
"$PYTHON" - "$work/layout/overview.json" <<'EOF'
import json, sys
board = json.load(open(sys.argv[1]))
board["panels"][1]["id"] = board["panels"][0]["id"]
board["panels"][2]["gridPos"]["x"] -= 1
json.dump(board, open(sys.argv[1], "w"))
EOF
broken layout 1 "assert sorted(x['kind'] for x in f) == ['layout', 'layout'], f" \
  static --dashboards "$work/layout"
