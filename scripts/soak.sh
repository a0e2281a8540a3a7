#!/usr/bin/env bash
# The long runs that do not fit in `make test` (RELIABILITY.md section 3):
# run by hand, record the figures in docs/RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export SEED=${SEED:-}
echo "== S1 kill -9 loop, 500 iterations"
S1_ITERATIONS=500 go test -count=1 -p 1 -tags e2e -timeout 4h -run TestKillNineLoop -v ./cmd/teamflow/ | grep -E "FIGURE|^(ok|FAIL)"
echo "== S2 power loss, 10,000 crash points"
S2_CRASH_POINTS=10000 go test -count=1 -timeout 4h -run TestS2 -v ./storage/ | grep -E "FIGURE|^(ok|FAIL)"
echo "== R4 deterministic cluster, 100,000 seeds"
R4_SEEDS=100000 go test -count=1 -timeout 4h -run TestDeterministicCluster -v ./cluster/ | grep -E "FIGURE|^(ok|FAIL)"
echo "== F1 HTTP fuzz, 10,000 requests per route"
F1_PER_ROUTE=10000 go test -count=1 -timeout 4h -run TestHTTPFuzzPerRoute -v ./httpapi/ | grep -E "FIGURE|^(ok|FAIL)"
echo "== R1 cluster faults, 20 minutes of the soak pattern"
R1_SOAK=1 R1_DURATION=20m go test -count=1 -p 1 -tags e2e -timeout 4h -run TestR1 -v ./cmd/teamflow/ | grep -E "FIGURE|^(ok|FAIL)"
echo "== R2 network partitions (netns, as root), 20 minutes of the soak pattern"
R2_SOAK=1 R2_DURATION=20m go test -count=1 -p 1 -tags e2e -timeout 4h -run TestR2 -v ./cmd/teamflow/ | grep -E "FIGURE|SKIP|^(ok|FAIL)"
echo "== R2 with five nodes (adds the bridge nemesis), 20 minutes of the soak pattern"
R2_NODES=5 R2_SOAK=1 R2_DURATION=20m go test -count=1 -p 1 -tags e2e -timeout 4h -run TestR2 -v ./cmd/teamflow/ | grep -E "FIGURE|SKIP|^(ok|FAIL)"
echo "== native fuzz targets, 10 minutes each"
for t in storage:FuzzTenantKey storage:FuzzCommandCodec storage:FuzzRecordDecode engine:FuzzMarkdownSanitize engine:FuzzPositionBetween httpapi:FuzzDecodeRequest; do
  pkg=${t%%:*}; fn=${t#*:}
  go test -run XXX -fuzz "^$fn\$" -fuzztime 10m "./$pkg/" | tail -2
done
echo "== negative controls (each must FAIL)"
go test -count=1 -tags bug_nosync -run TestS2 ./storage/ && echo "bug_nosync NOT detected" || echo "bug_nosync detected"
go test -count=1 -tags bug_nosync -run TestDeterministicCluster ./cluster/ && echo "R4 bug_nosync NOT detected" || echo "R4 bug_nosync detected"
