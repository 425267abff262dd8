#!/usr/bin/env bash
# Formatting and lints, as the pull-request workflow's lint job runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
