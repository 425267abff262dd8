#!/usr/bin/env bash
# The GitHub workflows and every YAML file the project ships: actionlint and zizmor (offline)
# clean on .github/workflows/ and the workflow examples, every YAML file parsed, and secrets
# only ever passed as environment variables (ci/check-yaml.py). Each check is first shown to
# catch a planted fault: a workflow with a job missing runs-on (actionlint), one expanding an
# untrusted input inside a script (zizmor) and one echoing a secret in a run step (check-yaml).
# Needs actionlint, zizmor and PyYAML (ci/requirements.txt); PYTHON names the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
fail() { printf 'ci/workflows.sh: %s\n' "$*" >&2; exit 1; }

mapfile -t workflows < <(git ls-files '.github/workflows/*.yml' 'ci/examples/*.github.yml')
mapfile -t yamls < <(git ls-files '*.yml' '*.yaml' | grep -v -e '^\.github/workflows/' -e '\.github\.yml$')
[ "${#workflows[@]}" -ge 5 ] || fail "expected the workflows under .github/workflows, found ${#workflows[@]}"

planted=$(mktemp -d)
trap 'rm -rf "$planted"' EXIT
cat >"$planted/no-runs-on.yml" <<'YAML'
name: planted
on: push
permissions: {}
jobs:
  j:
    steps:
      - run: echo hi
YAML
cat >"$planted/injection.yml" <<'YAML'
name: planted
on: pull_request_target
permissions: {}
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - run: echo "${{ github.event.pull_request.title }}"
YAML
cat >"$planted/secret.yml" <<'YAML'
name: planted
on: push
permissions: {}
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - run: curl -H "x-api-key: ${{ secrets.E2E_API_KEY }}" https://example.invalid
YAML
if actionlint -shellcheck= "$planted/no-runs-on.yml" >/dev/null 2>&1; then fail "actionlint passed a job without runs-on"; fi
if zizmor --offline --quiet "$planted/injection.yml" >/dev/null 2>&1; then fail "zizmor passed a template injection"; fi
if "$PYTHON" ci/check-yaml.py --workflow "$planted/secret.yml" >/dev/null; then fail "check-yaml.py passed a secret in a run step"; fi
echo "planted faults caught: actionlint, zizmor, check-yaml"

actionlint -shellcheck= "${workflows[@]}"
echo "actionlint: ${#workflows[@]} workflows clean"
zizmor --offline --quiet "${workflows[@]}"
"$PYTHON" ci/check-yaml.py "${yamls[@]}" --workflow "${workflows[@]}"
