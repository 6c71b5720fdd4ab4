#!/usr/bin/env bash
# Smoke test of a net-bouncer build on Linux and macOS (the release workflow runs it on every
# binary on a runner of the binary's platform; tests/system/workflows_test.ts runs it on `deno run`):
# it starts the program on a port with a log file, connects once, checks the connection line,
# stops it with SIGTERM and checks the "Stopped" line and exit code 0; then it reports on a log
# large enough to be read in two halves at once, so a binary without the report's worker fails.
#
#   scripts/smoke.sh [--port N] [--expect-version V] -- COMMAND [ARGS...]
#
# bash 3.2 compatible (macOS); uses bash's /dev/tcp to connect, no other tools.
set -euo pipefail

PROG="smoke.sh"
DEFAULT_PORT=47022
# Deadlines in tenths of a second (the polling step).
START_DEADLINE_TENTHS=200
LINE_DEADLINE_TENTHS=100
# Seconds a read may wait for the server to close the connection.
CLOSE_TIMEOUT_S=5
# The report's log: the connection line doubled this often (2^18 lines, about 18 MB: above the
# size at which the report reads a file in two halves, lib/report/count_in_worker.ts).
REPORT_DOUBLINGS=18

port="$DEFAULT_PORT"
expect_version=""
while (($# > 0)); do
  case "$1" in
    --port) port="$2" && shift 2 ;;
    --expect-version) expect_version="$2" && shift 2 ;;
    --) shift && break ;;
    *) echo "$PROG: error: unknown option: $1" >&2 && exit 2 ;;
  esac
done
(($# > 0)) || {
  echo "$PROG: error: no command given (usage: $PROG [--port N] -- COMMAND [ARGS...])" >&2
  exit 2
}

fail() {
  echo "$PROG: FAIL: $1" >&2
  if [[ -n "${log:-}" && -f "$log" ]]; then
    echo "--- log:" >&2
    cat "$log" >&2
  fi
  exit 1
}

# Waits until the log has a line matching the extended regex $1 (fixed deadline).
wait_for_line() {
  local pattern="$1" tenths="$2" waited=0
  until grep -Eq -- "$pattern" "$log" 2>/dev/null; do
    if ((waited >= tenths)); then fail "no line matching '$pattern' within $((tenths / 10)) s"; fi
    if [[ -n "${pid:-}" ]] && ! kill -0 "$pid" 2>/dev/null; then
      fail "the program exited before writing '$pattern'"
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

version_output="$("$@" --version)" || fail "--version exited with $?"
echo "$PROG: --version: $version_output"
if [[ -n "$expect_version" && "$version_output" != *"$expect_version"* ]]; then
  fail "--version printed '$version_output', expected it to contain '$expect_version'"
fi

workdir="$(mktemp -d)"
log="$workdir/net-bouncer.log"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$workdir"
}
trap cleanup EXIT

"$@" -p "$port" -l "$log" </dev/null &
pid=$!
wait_for_line "\[INFO\] Listening on port $port( |$)" "$START_DEADLINE_TENTHS"

# Connect, send nothing, read until the server closes. `read` fails at end of file (status 1)
# or after the timeout (status > 128): only the first means the server closed the connection.
exec 3<>"/dev/tcp/127.0.0.1/$port"
received=""
status=0
IFS= read -r -t "$CLOSE_TIMEOUT_S" -u 3 received || status=$?
exec 3<&-
if ((status > 128)); then fail "the server did not close the connection within $CLOSE_TIMEOUT_S s"; fi
if [[ -n "$received" ]]; then fail "the server sent data: '$received'"; fi

wait_for_line "\[INFO\] Connection from 127\.0\.0\.1 on port $port$" "$LINE_DEADLINE_TENTHS"

kill -TERM "$pid"
code=0
wait "$pid" || code=$?
pid=""
((code == 0)) || fail "exit code $code after SIGTERM (expected 0)"
grep -Eq "\[INFO\] Stopped after 1 connection" "$log" || fail "no 'Stopped after 1 connection' line"

echo "$PROG: OK: connection logged, stopped cleanly"
cat "$log"

big="$workdir/big.log"
grep -E "Connection from 127\.0\.0\.1" "$log" >"$big"
for ((i = 0; i < REPORT_DOUBLINGS; i++)); do cat "$big" "$big" >"$big.tmp" && mv "$big.tmp" "$big"; done
report="$("$@" report --format json "$big")" || fail "report exited with $?"
expected=$((1 << REPORT_DOUBLINGS))
[[ "$report" == *"\"connections\": $expected,"* ]] ||
  fail "the report of $expected lines does not count $expected connections: $report"
echo "$PROG: OK: report counted $expected connections"
