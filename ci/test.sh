#!/usr/bin/env bash
# The project's whole test run: formatting, lints, every test of the workspace, the main job,
# and the harness under real cargo-nextest. The README names this script; .ci/run calls it.
# Installs what it needs that a fresh machine may lack; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s\n' "$*"; }
fail() { printf 'ci/test.sh: %s\n' "$*" >&2; exit 1; }

step "tools"
# Real parts for the metrics tests: a Prometheus Pushgateway and promtool (Debian packages).
# The tests start and stop their own gateway on free loopback ports (they need it down, too).
# Valgrind for the benchmarks' instruction-count tier (gungraun).
# amtool (prometheus-alertmanager) checks the Alertmanager routing in ci/monitoring.sh.
if ! command -v prometheus-pushgateway >/dev/null || ! command -v promtool >/dev/null \
  || ! command -v valgrind >/dev/null || ! command -v amtool >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-pushgateway prometheus prometheus-alertmanager \
    valgrind >/dev/null
fi
# Node.js and npm for a published Toxiproxy client (npm toxiproxy-node-client) that drives the
# chaos proxy in testbed/tests/toxiproxy_node.rs; versions pinned by its package-lock.json.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
node --version
npm ci --prefix testbed/tests/toxiproxy-node --no-audit --no-fund --loglevel=error
# Every HTML page we ship is opened in a real headless browser: Debian's Chromium, driven by
# npm's playwright-core (ci/browser/check.js). The load tool draws its graphs with a TrueType
# font from fonts-dejavu-core.
if ! command -v chromium >/dev/null || [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
chromium --version
npm ci --prefix ci/browser --no-audit --no-fund --loglevel=error
prometheus-pushgateway --version 2>&1 | head -1
promtool --version 2>&1 | head -1
amtool --version 2>&1 | head -1
valgrind --version
# gungraun-runner must be the version of the gungraun library in Cargo.lock.
gungraun_version=$(awk '/^name = "gungraun"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$gungraun_version" ] || fail "no gungraun in Cargo.lock"
if [ "$(gungraun-runner --version 2>/dev/null | awk '{print $2}')" != "$gungraun_version" ]; then
  cargo install --locked gungraun-runner --version "$gungraun_version"
fi
gungraun-runner --version
# Python tools, pinned with hashes (ci/requirements.txt), in a virtual environment of the
# checkout: PyYAML for the monitoring scripts, actionlint and zizmor for the workflows.
python3 -m venv target/ci-venv
target/ci-venv/bin/pip install --quiet --require-hashes -r ci/requirements.txt
export PATH="$PWD/target/ci-venv/bin:$PATH" PYTHON="$PWD/target/ci-venv/bin/python"
actionlint --version | head -1
zizmor --version
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
cargo nextest --version >/dev/null 2>&1 || cargo install cargo-nextest --locked
cargo --version && cargo nextest --version | head -1

step "monitoring: alert rules (promtool test rules), Alertmanager routing (amtool), dashboard layout"
bash ci/monitoring.sh

step "workflows: actionlint, zizmor, every YAML file parsed, secrets only in env"
bash ci/workflows.sh


step "every test is compiled and run (no test = false on a target with #[test] code)"
cargo metadata --format-version 1 --no-deps --locked | python3 ci/untested-targets.py

step "rustfmt and clippy (ci/lint.sh)"
bash ci/lint.sh

step "tests (cargo test --workspace)"
cargo test --workspace --locked

step "tests with dhat's allocator (cargo test -p harness-selftest --features dhat-heap --test metrics)"
cargo test --locked -p harness-selftest --features dhat-heap --test metrics

step "main job (cargo test --test reliability -- --include e2e)"
cargo test --locked --test reliability -- --include e2e

step "the whole ladder (--include e2e --include slow)"
cargo test --locked --test reliability -- --include e2e --include slow

step "the soak in its short form (--include soak, RELIABILITY_SOAK_SECONDS=20)"
RELIABILITY_SOAK_SECONDS=20 cargo test --locked --test reliability -- --include soak soak

step "chaos on the wire (--include chaos: spans through the chaos proxy)"
cargo test --locked --test reliability -- --include chaos

# The remote-target path for real: a second testbed started standalone, with an API key,
# and the e2e suite pointed at it through [target] remote (here by environment variables).
step "main job against a remote target (testbed serve on loopback, with an API key)"
serve_log=$(mktemp)
RELIABILITY_REMOTE_KEY=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export RELIABILITY_REMOTE_KEY
# shellcheck source=ci/testbed.sh
. ci/testbed.sh
start_testbed "$serve_log" --auth-token-env RELIABILITY_REMOTE_KEY
serve_pid=$testbed_pid base=$testbed_base
trap 'kill "$serve_pid" 2>/dev/null || true' EXIT
remote_log=$(mktemp)
RELIABILITY_TARGET=remote \
RELIABILITY_TARGET_ENDPOINT="$base/v1/traces" \
RELIABILITY_TARGET_QUERY_URL="$base/api/v1" \
RELIABILITY_TARGET_API_KEY_ENV=RELIABILITY_REMOTE_KEY \
  cargo test --locked --test reliability -- --include e2e 2>&1 | tee "$remote_log"
# The key went into every request; it must come out nowhere: not in a log line, not in a report.
if grep -rqF -- "$RELIABILITY_REMOTE_KEY" "$remote_log" "$serve_log" target/reliability; then
  fail "the remote target's API key shows in the run's output or reports"
fi
# The spans went to that process, not to an embedded backend: its ledger holds the exports.
served=$(curl -sf -H "x-api-key: $RELIABILITY_REMOTE_KEY" "$base/api/v1/ledger" | grep -o '"status":200' | wc -l)
[ "$served" -gt 0 ] || fail "the remote testbed received no successful export"
echo "remote testbed answered $served export requests with 200"
kill "$serve_pid"
wait "$serve_pid" 2>/dev/null || true
trap - EXIT

# The dashboards and rules proven against real data: Prometheus, Pushgateway and Alertmanager
# from the Debian packages, the e2e suites and a load run pushing, every query evaluated.
step "monitoring proof: every panel, variable, recording and alert expression on real data"
bash ci/monitoring-proof.sh
step "cleanup of leftover e2e projects (ci/cleanup-projects.py against a testbed)"
bash ci/cleanup-test.sh

# Under cargo-nextest's protocol (one process per test, --exact): the harness, its selftest
# suites and the reliability suites. The other crates' plain #[test]s ran above under
# cargo test; a second runner proves nothing new about them and costs minutes.
step "cargo-nextest: the harness, its selftest and the suites"
cargo nextest run --locked --no-fail-fast -p reliability-harness -p harness-selftest -p reliability-suites

# The fixture suite under real cargo-nextest: the default run skips the 8 opt-in tests as
# ignored; --run-ignored all runs all 14. Every PASS must be a body that really ran (each
# fixture test logs its name), so a gated test can never be reported passed without running.
nextest_fixture() {
  local want_passed=$1 want_skipped=$2; shift 2
  local log out
  log=$(mktemp) out=$(mktemp)
  # The same packages as the nextest step above: the same feature set, so nothing is rebuilt.
  FIXTURE_RUN_LOG=$log cargo nextest run --locked -p reliability-harness -p harness-selftest -p reliability-suites \
    --test fixture_suite "$@" 2>&1 | tee "$out"
  grep -q "${want_passed} tests run: ${want_passed} passed, ${want_skipped} skipped" "$out" \
    || fail "nextest $*: expected ${want_passed} passed, ${want_skipped} skipped"
  local ran unique
  ran=$(wc -l < "$log") unique=$(sort -u "$log" | wc -l)
  [ "$ran" -eq "$want_passed" ] && [ "$unique" -eq "$want_passed" ] \
    || fail "nextest $*: reported ${want_passed} passed but ${ran} bodies ran (${unique} distinct)"
  rm -f "$log" "$out"
}
# Every benchmark in a quick mode that proves it works (criterion's --test runs each bench
# once; the instruction counts are a real Valgrind run), the figure programs, and the
# regression gate tested on itself (a planted regression must fail it). The gate proper,
# base vs candidate, is ci/bench-gate.sh: what a pull-request workflow runs.
step "benchmarks: criterion benches once each (--test), instruction counts under valgrind"
cargo bench --locked -p reliability-benches --bench pipeline --bench otlp --bench harness -- --test
cargo bench --locked -p reliability-benches --bench instructions
step "benchmarks: figures (span overhead, ingest, per-test overhead and the metrics layer)"
cargo build --release --locked -p harness-selftest -p reliability-benches --bins
target/release/span-figures 50000
cargo bench --locked -p reliability-benches --bench ingest
cargo bench --locked -p reliability-benches --bench proxy
cargo bench --locked -p reliability-benches --bench load
cargo bench --locked -p reliability-benches --bench capacity
target/release/overhead-bench
step "the regression gate on itself: a planted regression fails both tiers; bad input exits 2"
cargo test --locked -p reliability-benches --test gate -- --include slow

step "cargo-nextest: fixture suite, default selection"
nextest_fixture 6 8
step "cargo-nextest: fixture suite, --run-ignored all"
nextest_fixture 14 0 --run-ignored all
