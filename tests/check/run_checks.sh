#!/usr/bin/env bash
# tests/check/run_checks.sh STEP... — run `make check-STEP` for each step,
# each into its own log, keep going after a failure, and end with one
# summary: per step the result, the time, and per GoogleTest run in it the
# passed/failed/skipped counts. Exits 1 if any step failed.
#
# Each step gets at most CHECK_STEP_TIMEOUT seconds (default 1200; the
# slowest step takes about 6 minutes on a 2-core machine): a step that hangs
# is killed with its whole process group and reported as failed, with the
# last lines of its log (for a test binary, the test that was running).
#
# Called by `make check` (mk/check.mk) with MAKE and CHECK_LOGS set.
set -uo pipefail

MAKE="${MAKE:-make}"
logs="${CHECK_LOGS:-build/check/logs}"
step_timeout="${CHECK_STEP_TIMEOUT:-1200}"
mkdir -p "$logs"

steps=("$@")
declare -a results
failed=0
passed=0

# "[  PASSED  ] 60 tests." / "[  FAILED  ] 2 tests, listed below:" /
# "[  SKIPPED ] 3 tests, listed below:" — one triple per test binary run.
gtest_counts() {
  awk '
    /^\[==========\] Running [0-9]+ tests?/ { if (run) flush(); run = 1; p = f = s = 0 }
    /^\[  PASSED  \] [0-9]+ test/ { p = $4 }
    /^\[  FAILED  \] [0-9]+ tests?, listed below/ { f = $4 }
    /^\[  SKIPPED \] [0-9]+ tests?, listed below/ { s = $4 }
    function flush() { printf "%s%d passed, %d failed, %d skipped", sep, p, f, s; sep = "; " }
    END { if (run) flush() }
  ' "$1"
}

for step in "${steps[@]}"; do
  log="$logs/$step.log"
  echo "== check-$step (log: $log)"
  start=$(date +%s)
  timeout --kill-after=30 "$step_timeout" $MAKE --no-print-directory "check-$step" >"$log" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ]; then
    status=ok
    passed=$((passed + 1))
  else
    status=FAILED
    failed=$((failed + 1))
    # 124: timeout sent TERM; 137: it had to send KILL as well.
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      echo "check-$step: killed after ${step_timeout}s (CHECK_STEP_TIMEOUT)" >>"$log"
      status=TIMEOUT
    fi
  fi
  secs=$(( $(date +%s) - start ))
  counts=$(gtest_counts "$log")
  warnings=$(grep -c ': warning:' "$log" || true)
  line=$(printf '%-10s %-6s %4ds  %s' "$step" "$status" "$secs" "${counts:-(no gtest run)}")
  [ "$warnings" -gt 0 ] && line="$line  [$warnings compiler warnings]"
  results+=("$line")
  echo "   $line"
  if [ "$status" != ok ]; then
    echo "---- failures in $log:"
    grep -E '^\[  FAILED  \]|: error:|ERROR SUMMARY: [1-9]|definitely lost: [1-9]|^(FAIL|MISSING)|Error [0-9]+$' "$log" | head -40
    echo "---- last lines of $log:"
    tail -n 30 "$log"
    echo "----"
  fi
  if [ "$warnings" -gt 0 ]; then
    grep ': warning:' "$log" | sort -u | head -20
  fi
done

echo
echo "== make check summary"
for r in "${results[@]}"; do echo "   $r"; done
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
