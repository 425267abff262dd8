#!/usr/bin/env bash
# The benchmark regression gate, as a pull-request workflow runs it:
#   ci/bench-gate.sh [BASE_REF] [--filter TEXT] [--rounds N] [--quick] [--tier wall|instructions|both]
# BASE_REF defaults to the merge-base with main (else HEAD~1). Builds the base in a git worktree
# under target/bench-gate/, runs every criterion bench on base and candidate interleaved over
# rounds, and every gungraun bench once per side (instruction counts; needs valgrind and
# gungraun-runner, else that tier is skipped with a note). Prints a table, writes
# target/reliability/bench.json and bench.prom, and pushes when a Pushgateway is configured.
# Exit: 0 passed, 1 a bench regressed, 2 bad input (ref, flag, [benches]), 3 could not measure.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p reliability-benches --bin bench-gate
exec "${CARGO_TARGET_DIR:-target}/release/bench-gate" "$@"
