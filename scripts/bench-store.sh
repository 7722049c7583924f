#!/usr/bin/env bash
# Store benchmark: kumo-storetool bench against Tokyo Cabinet's tchtest with
# the same record pattern (key = value = record number as 8 digits), random
# order, RNUM records and bucket number BNUM, alternating the two programs,
# RUNS times each. Prints per-run times, medians and ratios (speed of kumo
# relative to tchtest: >1 means kumo is faster).
#
#   scripts/bench-store.sh            (make bench-store builds bin/ first)
#   RNUM=100000 RUNS=5 scripts/bench-store.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RNUM=${RNUM:-1000000}
BNUM=${BNUM:-2000000}
RUNS=${RUNS:-3}
TOOL=${TOOL:-bin/kumo-storetool}

if ! command -v tchtest >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench-store: tchtest missing and not root; install tokyocabinet-bin" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tokyocabinet-bin >/dev/null
fi
[ -x "$TOOL" ] || { echo "bench-store: $TOOL missing (run make build)" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-store.XXXXXX")
trap 'rm -rf "$dir"' EXIT

timeof() { "$@" | awk '/^time:/ {print $2}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

tw=(); tr=(); kw=(); kr=()
echo "records $RNUM, buckets $BNUM, runs $RUNS, dir $dir"
for i in $(seq 1 "$RUNS"); do
  rm -f "$dir/t.tch" "$dir/k.kch"
  tw+=("$(timeof tchtest write -rnd "$dir/t.tch" "$RNUM" "$BNUM")")
  kw+=("$(timeof "$TOOL" bench write -rnd "$dir/k.kch" "$RNUM" "$BNUM")")
  tr+=("$(timeof tchtest read -rnd "$dir/t.tch")")
  kr+=("$(timeof "$TOOL" bench read -rnd "$dir/k.kch")")
  echo "run $i: write tchtest ${tw[-1]}s kumo ${kw[-1]}s | read tchtest ${tr[-1]}s kumo ${kr[-1]}s"
done
mtw=$(median "${tw[@]}"); mkw=$(median "${kw[@]}")
mtr=$(median "${tr[@]}"); mkr=$(median "${kr[@]}")
awk -v a="$mtw" -v b="$mkw" 'BEGIN {printf "write -rnd: tchtest %.3fs  kumo %.3fs  kumo speed %.2fx tchtest (target >= 0.70x)\n", a, b, a/b}'
awk -v a="$mtr" -v b="$mkr" 'BEGIN {printf "read  -rnd: tchtest %.3fs  kumo %.3fs  kumo speed %.2fx tchtest (target >= 1.00x)\n", a, b, a/b}'
