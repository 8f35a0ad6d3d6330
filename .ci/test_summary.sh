#!/usr/bin/env bash
# Runs `deno test` with the given arguments, shows its output, then prints
# the ignored count, then "N passed, N failed" alone on the last line, and exits with deno's code.
# Deno counts a test's steps apart from the test; the totals here are top-level tests.
set -uo pipefail
export NO_COLOR=1
out=$(mktemp)
deno test "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
line=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$out" | tail -n 1)
rm -f "$out"
if [ -z "$line" ]; then
  echo "deno test printed no summary (a type or load error?), exit code $rc" >&2
  [ "$rc" -eq 0 ] && rc=1
  echo "0 passed, 1 failed"
  exit "$rc"
fi
count() { echo "$line" | grep -oE "[0-9]+ $1" | head -n1 | grep -oE '^[0-9]+' || echo 0; }
echo
echo "$(count ignored) skipped"
echo "$(count passed) passed, $(count failed) failed"
exit "$rc"
