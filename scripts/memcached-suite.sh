#!/usr/bin/env bash
# Runs memcached's own Perl test suite (t/*.t of a memcached source checkout
# you provide) against a local kumo cluster, and optionally against a
# memcached, in the suite's T_MEMD_USE_DAEMON mode; prints one line per file.
#
#   scripts/memcached-suite.sh /path/to/memcached-src [N_SERVERS] [MEMCACHED_PORT]
#
# The README's "Compatibility with memcached" comes from such a run. The
# suite is not part of this repository, and nothing here fetches it. Files
# that start their own server with special flags, or test memcached's
# internals (slabs, LRU, extstore, proxy, TLS, SASL), are left out. Output
# of every file goes to $OUT (default: a temporary directory); TESTS="a b"
# runs only t/a.t and t/b.t. Needs perl
# and, for the comparison, a running memcached on MEMCACHED_PORT. (Against a
# memcached built with extstore but started without it, metaget.t waits for
# a flush that never comes, until its 300 s timeout.)
set -euo pipefail
src=${1:?usage: $0 /path/to/memcached-src [servers] [memcached-port]}
n=${2:-1}
mport=${3:-}
[ -f "$src/t/lib/MemcachedTest.pm" ] || { echo "no t/lib/MemcachedTest.pm under $src" >&2; exit 2; }
cd "$(dirname "$0")/.."
make -s build
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
tests=${TESTS:-"getset incrdecr cas noreply flags getandtouch touch flush-all multiversioning expirations
bogus-commands malicious-commands chunked-items stats-detail metaget binary binary-get
issue_3 issue_14 issue_22 issue_29 issue_41 issue_42 issue_70 issue_104 issue_108 issue_140
issue_152 issue_163 issue_183 issue_192 issue_260"}

# The suite runs from a build directory: t/ and a memcached-debug binary it
# asks for its -h output (the real memcached's if installed).
work=$(mktemp -d)
cp -r "$src/t" "$work/t"
printf '#!/bin/sh\nexec memcached "$@"\n' >"$work/memcached-debug"
printf '#!/bin/sh\nshift\nexec "$@"\n' >"$work/timedrun"
chmod +x "$work/memcached-debug" "$work/timedrun"

port=11399
data=$(mktemp -d)
bin/kumo-local -n "$n" -t "$port" -data "$data" >"$data/local.out" 2>&1 &
local_pid=$!
trap 'kill $local_pid 2>/dev/null; wait $local_pid 2>/dev/null || true; rm -rf "$work" "$data"' EXIT
for _ in $(seq 100); do grep -q "Ctrl-C" "$data/local.out" 2>/dev/null && break; sleep 0.1; done

# reset PORT: empty the store and the counters; the files expect a fresh
# server.
reset() {
	perl -MIO::Socket::INET -e '
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ARGV[0]") or exit 1;
		print $s "flush_all\r\nstats reset\r\nstats detail off\r\n";
		<$s> for 1 .. 3;' "$1"
}

run() { # run NAME PORT
	local f
	for f in $tests; do
		[ -f "$work/t/$f.t" ] || continue
		reset "$2"
		(cd "$work" && T_MEMD_USE_DAEMON=127.0.0.1:$2 timeout 300 prove -v "t/$f.t") >"$OUT/$f.$1.txt" 2>&1 || true
		printf '%-20s %-10s ok %5d  not ok %3d\n' "$f" "$1" \
			"$(grep -c '^ok [0-9]' "$OUT/$f.$1.txt" || true)" "$(grep -c '^not ok [0-9]' "$OUT/$f.$1.txt" || true)"
	done
}

run kumo "$port"
[ -n "$mport" ] && run memcached "$mport"
echo "outputs in $OUT"
