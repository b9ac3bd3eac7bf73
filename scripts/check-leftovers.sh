#!/usr/bin/env bash
# Fails when a process started by a test run is still alive: every process the run starts
# (cargo, the test binaries, the servers they spawn and whatever those fork) inherits
# TAXON_TEST_RUN from scripts/test.sh, so one still carrying it after the run is a leak.
# Lists the leftovers, stops them by PID (TERM, then KILL), and exits 1; exits 0 when none.
# Usage: scripts/check-leftovers.sh RUN_ID [PID_TO_IGNORE...]
set -uo pipefail
id="${1:?usage: check-leftovers.sh RUN_ID [PID...]}"
shift
ignore=" $$ $PPID $* "

# This script and its subshells must not count: /proc/PID/environ is the environment a process
# was started with (a subshell shares its parent's), so start again without the id.
if [ -n "${TAXON_TEST_RUN:-}" ]; then
  exec env -u TAXON_TEST_RUN "$0" "$id" "$@"
fi

leftovers() {
  local files file pid
  # Unreadable environs belong to other users.
  files=$(grep -lzx "TAXON_TEST_RUN=$id" /proc/[0-9]*/environ 2>/dev/null)
  for file in $files; do
    pid="${file#/proc/}"
    pid="${pid%/environ}"
    case "$ignore" in *" $pid "*) continue ;; esac
    echo "$pid"
  done
}

leftovers >"${TMPDIR:-/tmp}/leftovers.$$"
pids=$(cat "${TMPDIR:-/tmp}/leftovers.$$")
rm -f "${TMPDIR:-/tmp}/leftovers.$$"
[ -z "$pids" ] && { echo "== no process of this test run is left"; exit 0; }
echo "== processes started by the tests are still running:" >&2
for pid in $pids; do
  echo "   $(ps -o pid=,ppid=,rss=,args= -p "$pid" 2>/dev/null)" >&2
done
for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
sleep 2
leftovers >"${TMPDIR:-/tmp}/leftovers.$$"
for pid in $(cat "${TMPDIR:-/tmp}/leftovers.$$"); do kill -KILL "$pid" 2>/dev/null; done
rm -f "${TMPDIR:-/tmp}/leftovers.$$"
echo "== stopped them; a test leaks a process (stop services by process group: tests/cli/common/service.rs)" >&2
exit 1
