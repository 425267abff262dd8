#!/usr/bin/env bash
# The monitoring loop's configuration, checked with the real tools (Debian packages
# prometheus and prometheus-alertmanager): promtool check rules and test rules (every alert
# fires once with its labels and annotations and stays silent on healthy data), amtool
# check-config, and one amtool routes test per alert. Every alert of the rules must have a
# firing promtool case and a routes test, or this fails. Then promtool check config on
# prometheus.yml and the dashboards' static checks (monitoring/proof.py static).
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { printf 'ci/monitoring.sh: %s\n' "$*" >&2; exit 1; }

rules=monitoring/prometheus/rules/reliability.rules.yml
tests=monitoring/prometheus/tests/reliability.test.yml
config=monitoring/alertmanager/alertmanager.yml
routes=monitoring/alertmanager/tests/routes.txt

promtool check rules "$rules"
promtool test rules "$tests"
amtool check-config "$config"

checked=0
while read -r receiver labels; do
  case "$receiver" in '' | '#'*) continue ;; esac
  # shellcheck disable=SC2086 # labels are word-split on purpose: one argument per label
  amtool config routes test --config.file="$config" --verify.receivers="$receiver" $labels >/dev/null 2>&1 \
    || fail "route: expected $receiver for $labels, got $(amtool config routes test --config.file="$config" $labels 2>/dev/null)"
  checked=$((checked + 1))
done <"$routes"
echo "amtool: $checked routes tests passed"

for alert in $(sed -n 's/^ *- alert: *//p' "$rules"); do
  grep -Eq "alertname: $alert\$" "$tests" || fail "alert $alert has no promtool case in $tests"
  # A firing case names the alert, then its expected alerts on the next line.
  grep -EA1 "alertname: $alert\$" "$tests" | grep -q "exp_alerts:" || fail "alert $alert has no firing promtool case"
  grep -Eq "alertname=$alert( |\$)" "$routes" || fail "alert $alert has no routes test in $routes"
done
echo "every alert has a firing case and a routes test"

promtool check config monitoring/prometheus/prometheus.yml
"${PYTHON:-python3}" monitoring/proof.py static
