#!/usr/bin/env bash
# ci/cleanup-projects.py against a real testbed with an API key: projects of old and recent
# e2e runs and one that is not an e2e project; a dry run deletes nothing; the real run deletes
# exactly the old e2e ones; a wrong key and an unreachable backend are errors with their exit
# codes; the key never shows in the output.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
fail() { printf 'ci/cleanup-test.sh: %s\n' "$*" >&2; exit 1; }
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

CLEANUP_TEST_KEY=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export CLEANUP_TEST_KEY
# shellcheck source=ci/testbed.sh
. ci/testbed.sh
start_testbed "$work/serve.log" --auth-token-env CLEANUP_TEST_KEY
pid=$testbed_pid base=$testbed_base

now=$(date +%s)
old1="e2e-reliability-$((now - 30 * 3600))-0123abcd"
old2="e2e-reliability-$((now - 7 * 3600))-89abcdef"
recent="e2e-reliability-$((now - 600))-00ff00ff"
other="checkout-service"
i=0
for project in "$old1" "$old2" "$recent" "$other"; do
  i=$((i + 1))
  body=$(printf '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"%s"}}]},"scopeSpans":[{"spans":[{"traceId":"%032x","spanId":"%016x","name":"s","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}' "$project" "$i" "$i")
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $CLEANUP_TEST_KEY" -H 'content-type: application/json' --data-binary "$body" "$base/v1/traces")
  [ "$status" = 200 ] || fail "export for $project answered $status"
done
names() { curl -sf -H "x-api-key: $CLEANUP_TEST_KEY" "$base/api/v1/projects" | "$PYTHON" -c 'import json, sys; print(" ".join(sorted(p["name"] for p in json.load(sys.stdin)["projects"])))'; }
[ "$(names | wc -w)" -eq 4 ] || fail "expected 4 projects, found: $(names)"

check() {  # output file, python assertion on the result r
  "$PYTHON" -c "import json, sys; r = json.load(open(sys.argv[1])); $2" "$1" || fail "unexpected result: $(cat "$1")"
}
run() { "$PYTHON" ci/cleanup-projects.py --query-url "$base/api/v1" --api-key-env CLEANUP_TEST_KEY "$@"; }

run --older-than 6 --dry-run >"$work/dry.json"
check "$work/dry.json" "assert r['listed'] == 4 and r['matched'] == 3 and r['deleted'] == sorted(['$old1', '$old2']) and r['kept'] == ['$recent'] and r['dry_run'], r"
[ "$(names | wc -w)" -eq 4 ] || fail "a dry run deleted projects: $(names)"

run --older-than 6 >"$work/real.json"
check "$work/real.json" "assert r['deleted'] == sorted(['$old1', '$old2']) and r['failed'] == [] and not r['dry_run'], r"
[ "$(names)" = "$(printf '%s\n' "$other" "$recent" | sort | tr '\n' ' ' | sed 's/ $//')" ] || fail "left: $(names)"

rc=0; CLEANUP_TEST_KEY=wrong "$PYTHON" ci/cleanup-projects.py --query-url "$base/api/v1" --api-key-env CLEANUP_TEST_KEY --older-than 0 >"$work/wrong.out" 2>&1 || rc=$?
[ "$rc" -eq 3 ] || fail "a wrong key exited $rc, expected 3"
rc=0; "$PYTHON" ci/cleanup-projects.py --query-url "$base/api/v1" --api-key-env NO_SUCH_VARIABLE_SET --older-than 1 >"$work/unset.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "an unset key variable exited $rc, expected 2"
rc=0; run --older-than -1 >"$work/neg.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "a negative age exited $rc, expected 2"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
rc=0; run --older-than 1 >"$work/down.out" 2>&1 || rc=$?
[ "$rc" -eq 3 ] || fail "an unreachable backend exited $rc, expected 3"
if grep -qF -- "$CLEANUP_TEST_KEY" "$work"/*.json "$work"/*.out; then fail "the API key shows in the output"; fi
echo "cleanup: dry run kept all 4; deleted the 2 e2e projects older than 6 h, kept the recent one and the other project; bad key 3, unset key 2, bad age 2, unreachable 3"
