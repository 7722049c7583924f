#!/usr/bin/env bash
# make bench-cluster: the same kumo-bench loads against memcached (-t 2), the
# same memcached through twemproxy, a 1-server and a 3-server kumo cluster on
# this machine, in alternation; prints medians and ratios to memcached (see
# BENCHMARKS.md). Extra arguments go to kumo-bench-cluster, e.g. -t 5
# -rounds 1, or -pprof /tmp/kumo-prof.
set -euo pipefail
cd "$(dirname "$0")/.."
{ command -v memcached && command -v nutcracker; } >/dev/null 2>&1 || ./scripts/install-test-tools.sh
mkdir -p bin
CGO_ENABLED=0 ${GO:-go} build -trimpath -o bin/ ./cmd/...
exec bin/kumo-bench-cluster -B bin "$@"
