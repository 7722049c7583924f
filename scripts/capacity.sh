#!/usr/bin/env bash
# Measures the CPU cost per request of kumo-gateway and kumo-server
# (docs/capacity.md): for a 1-server and a 3-server local cluster, runs
# kumo-bench with 100 %, 90 % and 0 % gets and divides each role's CPU time
# (utime+stime from /proc) by the requests served. Linux only.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
B=bin
DUR=${DUR:-5s}
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
for n in 1 3; do
  port=$((11290 + n))
  dir=$(mktemp -d)
  $B/kumo-local -n "$n" -t "$port" -data "$dir" >"$dir/local.out" 2>&1 &
  local_pid=$!
  trap 'kill $local_pid 2>/dev/null; wait $local_pid 2>/dev/null || true' EXIT
  for _ in $(seq 100); do grep -q "Ctrl-C" "$dir/local.out" 2>/dev/null && break; sleep 0.1; done
  $B/kumo-bench -s 127.0.0.1:$port -keys 10000 -preload -n 1 -q >/dev/null
  for gets in 1.0 0.9 0.0; do
    gw=$(pgrep -f "kumo-gateway.*-t 127.0.0.1:$port")
    srv=$(pgrep -f "kumo-server.*$dir/")
    g0=$(ticks "$gw"); s0=0; for p in $srv; do s0=$((s0 + $(ticks "$p"))); done
    ops=$($B/kumo-bench -s 127.0.0.1:$port -c 16 -t "$DUR" -gets "$gets" -q | awk '/^ops/{print $2}')
    g1=$(ticks "$gw"); s1=0; for p in $srv; do s1=$((s1 + $(ticks "$p"))); done
    awk -v n="$n" -v g="$gets" -v ops="$ops" -v gw=$((g1 - g0)) -v sv=$((s1 - s0)) -v hz="$hz" -v d="$DUR" 'BEGIN {
      printf "%d server(s)  gets %.0f%%  %8d ops (%s)  gateway %6.1f us/op  servers %6.1f us/op\n",
        n, g * 100, ops, d, gw / hz / ops * 1e6, sv / hz / ops * 1e6 }'
  done
  kill "$local_pid"; wait "$local_pid" 2>/dev/null || true
  trap - EXIT
  rm -rf "$dir"
done
