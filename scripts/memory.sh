#!/usr/bin/env bash
# Measures memory per stored item (issue 7): loads KEYS keys (default
# 1,000,000) of 32 B and of 1024 B values into a 1-server kumo cluster
# (kumo-local) and into memcached, then prints the server process's RSS
# (VmRSS, and for kumo-server RssAnon and RssFile: its store is an mmap'd
# file, so page cache it touched counts in RssFile; the Rss of that mapping
# alone; the RSS before loading and the peak VmHWM), the store file size,
# the item count and RSS / items, with the ratio kumo / memcached.
# Linux only; needs memcached (scripts/install-test-tools.sh).
#
#   KEYS=N   keys per run (default 1000000)
#   SIZES=…  value sizes in bytes (default "32 1024")
#
# Ports: gateway 11391, memcached 11392; kumo-local itself always uses
# 19700 (manager) and 19801/19901 (server), so no other kumo-local may run.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
SIZES=${SIZES:-32 1024}
GWPORT=11391
MCPORT=11392
B=bin
command -v memcached >/dev/null || { echo "memory.sh: memcached not found (make tools)" >&2; exit 1; }
make -s build

pids=() # every process started here, stopped by cleanup
dirs=() # every temp dir made here, removed by cleanup
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  # kumo-local stops its children on SIGTERM; make sure none outlived it.
  for d in "${dirs[@]}"; do
    for p in $(pgrep -f "kumo-(server|manager|gateway) .*$d/" || true); do kill "$p" 2>/dev/null || true; done
    rm -rf "$d"
  done
  pids=() dirs=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# field PID NAME prints NAME (VmRSS, RssAnon, RssFile) of PID in KiB.
field() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

# maprss PID SUFFIX prints the Rss in KiB of PID's mappings of files whose
# name ends in SUFFIX (the rest of RssFile is the executable's own pages).
maprss() {
  awk -v s="$2" '/^[0-9a-f]+-[0-9a-f]+ / { in_map = ($NF ~ s "$") }
    in_map && $1 == "Rss:" { n += $2 } END { print n + 0 }' "/proc/$1/smaps"
}

# mcstat NAME prints memcached's stat NAME.
mcstat() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$MCPORT"
  printf 'stats\r\nquit\r\n' >&3
  while IFS= read -r line <&3; do
    line=${line%$'\r'}
    case $line in "STAT $1 "*) echo "${line##* }" ;; END) break ;; esac
  done
  exec 3>&-
}

# until SECONDS_LIMIT CMD… polls CMD every 0.5 s until it succeeds.
until_ok() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.5
  done
}

preload() {
  $B/kumo-bench -s "127.0.0.1:$1" -keys "$KEYS" -preload -n 1 -gets 1 -d "$2" -q |
    awk '/^preload/ { print; if ($5 != 0) bad = 1 } END { exit bad }'
}

out=()
printf 'memory.sh: %s keys per run; %s; %s cores; load %s\n' "$KEYS" "$(date -u '+%F %H:%M UTC')" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
for size in $SIZES; do
  # --- kumo: manager + 1 server + gateway ---
  dir=$(mktemp -d /tmp/kumo-memory.XXXXXX)
  dirs+=("$dir")
  $B/kumo-local -n 1 -t "$GWPORT" -data "$dir" >"$dir/local.out" 2>&1 &
  pids+=($!)
  until_ok 20 grep -q "Ctrl-C" "$dir/local.out" || { cat "$dir/local.out" >&2; exit 1; }
  srvaddr=$(awk '$1 == "server-1" {print $2}' "$dir/local.out")
  srv=$(pgrep -f "kumo-server.*$dir/")
  gw=$(pgrep -f "kumo-gateway.*-t 127.0.0.1:$GWPORT")
  mgr=$(pgrep -f "kumo-manager.*$dir/")
  rss0=$(field "$srv" VmRSS)
  preload "$GWPORT" "$size"
  # Wait until the server holds every key, any online grow (Optimize into
  # <store>.compact) is over and a checkpoint has run.
  items_ok() {
    local n
    n=$($B/kumostat "$srvaddr" items 2>/dev/null | awk '{print $NF}')
    [ "${n:-0}" -ge "$KEYS" ] && ! compgen -G "$dir/*.compact" >/dev/null
  }
  until_ok 300 items_ok || { echo "memory.sh: kumo-server never reached $KEYS items" >&2; exit 1; }
  sleep 2
  items=$($B/kumostat "$srvaddr" items | awk '{print $NF}')
  rss=$(field "$srv" VmRSS) anon=$(field "$srv" RssAnon) file=$(field "$srv" RssFile)
  hwm=$(field "$srv" VmHWM) # peak, e.g. while the online grow copied the store
  gwrss=$(field "$gw" VmRSS) mgrrss=$(field "$mgr" VmRSS)
  db=$(ls "$dir"/*.kch)
  kch=$(maprss "$srv" '\\.kch')
  fsize=$(stat -c %s "$db")
  # The file runs ahead of the log (fallocate reserves up to 64 MiB at a
  # time; Close trims it); the checkpoint is the log end once writes stop.
  used=$($B/kumo-storetool inform "$db" | awk '$1 == "checkpoint:" {print $2}')
  bnum=$($B/kumo-storetool inform "$db" | awk '$1 == "bucket" {print $3}')
  kumo_bpi=$(awk -v r="$rss" -v n="$items" 'BEGIN { printf "%.1f", r * 1024 / n }')
  out+=("$(awk -v s="$size" -v r="$rss" -v a="$anon" -v f="$file" -v k="$kch" -v h="$hwm" -v r0="$rss0" -v n="$items" \
    -v fs="$fsize" -v u="$used" -v bn="$bnum" -v g="$gwrss" -v m="$mgrrss" 'BEGIN {
      printf "kumo-server  %5d B  %9d items  RSS %7.1f MiB (anon %5.1f, file %7.1f of which store map %7.1f; empty %4.1f, peak %7.1f)  %7.1f B/item (anon %4.1f, store map %6.1f)  store file %7.1f MiB (log end %7.1f MiB, %d slots)  gateway %4.1f MiB  manager %4.1f MiB",
        s, n, r / 1024, a / 1024, f / 1024, k / 1024, r0 / 1024, h / 1024, r * 1024 / n, a * 1024 / n, k * 1024 / n, fs / 1048576, u / 1048576, bn, g / 1024, m / 1024 }')")
  cleanup

  # --- memcached ---
  memcached -u "$(id -un)" -p "$MCPORT" -U 0 -l 127.0.0.1 -m 4096 -t 2 &
  mc=$!
  pids+=("$mc")
  until_ok 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$MCPORT" 2>/dev/null
  preload "$MCPORT" "$size"
  items=$(mcstat curr_items)
  evict=$(mcstat evictions)
  [ "$items" -eq "$KEYS" ] && [ "$evict" -eq 0 ] ||
    { echo "memory.sh: memcached holds $items items, $evict evictions (want $KEYS, 0)" >&2; exit 1; }
  rss=$(field "$mc" VmRSS)
  out+=("$(awk -v s="$size" -v r="$rss" -v n="$items" -v k="$kumo_bpi" -v b="$(mcstat bytes)" 'BEGIN {
      printf "memcached    %5d B  %9d items  RSS %7.1f MiB  %7.1f B/item (item bytes %.1f MiB)  kumo-server / memcached = %.2fx",
        s, n, r / 1024, r * 1024 / n, b / 1048576, k / (r * 1024 / n) }')")
  cleanup
done
printf '%s\n' "${out[@]}"
