#!/usr/bin/env bash
# The version of this checkout, from git, usable as a Debian version and shown by `collector version`:
#   on a tag vX.Y.Z                  X.Y.Z
#   N commits after tag vX.Y.Z       X.Y.Z.gitN.gHASH     (sorts after X.Y.Z)
#   no tag yet                       P~gitN.gHASH         (P = <Version> of Directory.Build.props;
#                                                          sorts before the release P)
#   uncommitted changes              ... with .dirty appended
# No '+': the daemon shows its informational version up to the first '+' (the SDK appends
# +<commit> there), and a Debian native version cannot hold '-'.
set -euo pipefail
cd "$(dirname "$0")/.."
props=$(sed -n 's|.*<Version>\(.*\)</Version>.*|\1|p' Directory.Build.props | head -n1)
if ! git rev-parse --git-dir >/dev/null 2>&1; then echo "${props:-0.0.0}"; exit 0; fi
dirty=""; git diff --quiet HEAD -- 2>/dev/null || dirty=".dirty"
if described=$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
  # v1.2.3-4-gabcdef0
  hash=${described##*-}; rest=${described%-*}; count=${rest##*-}; tag=${rest%-*}; tag=${tag#v}
  if [ "$count" = 0 ]; then echo "$tag$dirty"; else echo "$tag.git$count.$hash$dirty"; fi
else
  echo "${props:-0.0.0}~git$(git rev-list --count HEAD).g$(git rev-parse --short=7 HEAD)$dirty"
fi
