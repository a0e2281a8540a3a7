#!/usr/bin/env bash
# CI's share of native fuzzing (RELIABILITY F2): 4 targets per run, chosen
# by rotating through the list with the commit count, so successive runs
# cover every target. A crasher fails the run; commit it under testdata/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(
  storage:FuzzTenantKey storage:FuzzCommandCodec storage:FuzzRecordDecode
  engine:FuzzMarkdownSanitize engine:FuzzPositionBetween httpapi:FuzzDecodeRequest
)
n=${#targets[@]}
run=${FUZZ_RUN:-$(git rev-list --count HEAD 2>/dev/null || echo 0)}
time=${FUZZ_TIME:-15s}
for i in 0 1 2 3; do
  t=${targets[$(( (run * 4 + i) % n ))]}
  pkg=${t%%:*}; fn=${t#*:}
  echo "fuzz $pkg $fn for $time"
  go test -run XXX -fuzz "^$fn\$" -fuzztime "$time" -parallel 2 "./$pkg/" | tail -1
done
