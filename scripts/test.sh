#!/usr/bin/env bash
# Runs every test of the solution (Release) and ends with one summary line; exits non-zero when any test fails.
# Usage: bash scripts/test.sh [extra dotnet test arguments, e.g. --filter ...]
set -uo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

dotnet test Engine.sln -c Release --logger "console;verbosity=minimal" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# dotnet test prints one "Passed!/Failed! - Failed: F, Passed: P, Skipped: S, Total: T" line per test project.
awk -v rc="$rc" '
  /(Passed|Failed)! +- +Failed: / {
    gsub(",", ""); projects++
    for (i = 1; i <= NF; i++) {
      if ($i == "Failed:") f += $(i + 1)
      if ($i == "Passed:") p += $(i + 1)
      if ($i == "Skipped:") s += $(i + 1)
    }
  }
  END {
    status = (rc == 0 && f == 0) ? "PASSED" : "FAILED"
    printf "test.sh: %s: %d passed, %d failed, %d skipped in %d test projects (dotnet test exit %d)\n", status, p, f, s, projects, rc
  }' "$log"
exit "$rc"
