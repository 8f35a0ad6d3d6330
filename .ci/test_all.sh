#!/usr/bin/env bash
# The README's test command (`deno task test`): every test with the rig's node on containerd, then
# the files listed in .ci/crio_suites with the node on CRI-O. Each run's own summary is shown; the
# last line adds them up as "N passed, N failed". Exits non-zero when either run fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export NO_COLOR=1
step() { printf '\n== %s\n' "$*"; }

# Each run's own summary line is kept; the last line adds them up.
summaries=$(mktemp)
trap 'rm -f "$summaries"' EXIT
rc=0
run_suite() {
  local out
  out=$(mktemp)
  "$@" 2>&1 | tee "$out" || rc=1
  tail -n 1 "$out" >>"$summaries"
  rm -f "$out"
}

step "every test, the node on containerd"
run_suite env DNC_RIG_RUNTIME=containerd bash .ci/test_summary.sh --allow-all tests/

step "the rig's suites, the node on CRI-O"
mapfile -t crio_suites < <(grep -v -e '^#' -e '^$' .ci/crio_suites)
run_suite env DNC_RIG_RUNTIME=crio bash .ci/test_summary.sh --allow-all "${crio_suites[@]}"

echo
awk '{ passed += $1; failed += $3 } END { print passed " passed, " failed " failed" }' "$summaries"
exit "$rc"
