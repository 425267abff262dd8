#!/usr/bin/env bash
# The main job: the reliability suites under the harness, with the selection and options given
# (default: the README's `--include e2e`). Every workflow runs its suites through this script:
#   bash ci/main-job.sh -m "e2e and not slow"                       # pull request
#   bash ci/main-job.sh --include e2e --include slow --pushgateway-label branch=main   # nightly
#   bash ci/main-job.sh --include chaos                             # weekly chaos
# Reports land in target/reliability/ (RELIABILITY_OUTPUT_DIR moves them); a Pushgateway is
# used when PROMETHEUS_PUSHGATEWAY_URL is set. Exit codes are the harness's.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$#" -gt 0 ] || set -- --include e2e
exec cargo test --locked --test reliability -- "$@"
