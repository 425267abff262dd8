#!/usr/bin/env bash
# The nightly's short load run: the steady-1k plan (1,000 iterations/s for 10 s against the
# embedded backend), results under target/reliability/load/, pushed to the Pushgateway when
# PROMETHEUS_PUSHGATEWAY_URL is set, with any extra `--pushgateway-label k=v` given.
# Exit codes are the load tool's (0 held, 1 a threshold breached, 5 only the push failed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p reliability-load --bin load
push=()
[ -n "${PROMETHEUS_PUSHGATEWAY_URL:-}" ] && push=(--pushgateway "$PROMETHEUS_PUSHGATEWAY_URL" "$@")
exec target/release/load run load/plans/steady-1k.yaml --out target/reliability/load "${push[@]}"
