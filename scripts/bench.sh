#!/usr/bin/env bash
# Starts a throwaway cloud-mode server on a temporary data directory and
# loads it with `teamflow bench` (arguments are passed on). Results go to
# docs/BENCHMARKS.md by hand, with the machine noted. The plan's hourly API
# limits are off: a throughput benchmark would otherwise measure 429s after
# the first 1,000 requests.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bin/teamflow
data=$(mktemp -d)
port=${BENCH_PORT:-8099}
"$bin" serve --mode cloud --data "$data" --addr "127.0.0.1:$port" --log-level warn --rate-limits off >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
"$bin" bench --server "http://127.0.0.1:$port" "$@"
