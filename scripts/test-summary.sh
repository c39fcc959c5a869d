#!/usr/bin/env bash
# Prints, at the very end of `make test`, the failed tests (name and the first lines of their
# error message, so a CI log's tail says what failed) and one closing line
# "tests: N passed, N failed, N skipped" summed over every test assembly in a `dotnet test` log.
# dotnet prints either "Passed!  - Failed: 0, Passed: 9, ..." (minimal verbosity) or a
# "Total tests: / Passed: / Failed: / Skipped:" block (normal).
log=${1:?log file}
awk '
  /^  Failed [A-Za-z_][A-Za-z0-9_.]* \[/ { failed = failed "failed: " $2 "\n"; grab = 1; lines = 0; next }
  grab && /^  (Passed|Failed|Skipped) / { grab = 0 }
  grab && /^  Error Message:/ { next }
  grab && /^  Stack Trace:/ { grab = 0 }
  grab && lines < 6 && NF > 0 { failed = failed "    " substr($0, 1, 300) "\n"; lines++ }
  END { printf "%s", failed }
' "$log"
awk '
  /(Passed|Failed)! +- +Failed: / {
    for (i = 1; i <= NF; i++) {
      v = $(i+1); gsub(",", "", v)
      if ($i == "Failed:")  f += v
      if ($i == "Passed:")  p += v
      if ($i == "Skipped:") s += v
    }
    seen = 1; next
  }
  /^Total tests: / { block = 1; seen = 1; next }
  block && /^ +Passed: /  { p += $2; next }
  block && /^ +Failed: /  { f += $2; next }
  block && /^ +Skipped: / { s += $2; next }
  { block = 0 }
  END { if (seen) printf "tests: %d passed, %d failed, %d skipped\n", p, f, s; else print "tests: 0 passed, 1 failed (no test summary found in the log)" }
' "$log"
