#!/usr/bin/env bash
# Prints one closing line "tests: N passed, N failed, N skipped" summed over every test
# assembly in a `dotnet test` log (dotnet prints one "Passed!/Failed!" line per assembly).
log=${1:?log file}
awk '
  /(Passed|Failed)! +- +Failed: / {
    for (i = 1; i <= NF; i++) {
      gsub(",", "", $(i+1))
      if ($i == "Failed:")  f += $(i+1)
      if ($i == "Passed:")  p += $(i+1)
      if ($i == "Skipped:") s += $(i+1)
    }
    seen = 1
  }
  END { if (seen) printf "tests: %d passed, %d failed, %d skipped\n", p, f, s; else print "tests: 0 passed, 1 failed (no test summary found in the log)" }
' "$log"
