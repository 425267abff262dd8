# Sourced by CI scripts: start_testbed LOG [serve flags...] starts `target/debug/testbed serve`
# on a loopback port it picks itself, waits for its "testbed listening on URL" line (a liveness
# bound of 60 s), and sets testbed_pid and testbed_base. Needs a fail() in the caller.
start_testbed() {
  local log=$1
  shift
  cargo build --locked -q -p testbed --bin testbed
  target/debug/testbed serve --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
  testbed_pid=$!
  testbed_base=""
  for _ in $(seq 1 600); do
    testbed_base=$(sed -n 's/^testbed listening on //p' "$log")
    [ -n "$testbed_base" ] && return 0
    kill -0 "$testbed_pid" 2>/dev/null || fail "testbed serve exited: $(cat "$log")"
    sleep 0.1
  done
  fail "testbed serve did not start: $(cat "$log")"
}
