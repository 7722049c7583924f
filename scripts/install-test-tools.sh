#!/usr/bin/env bash
# Installs the Debian packages that tests and benchmarks compare against.
# The kumo binaries never need any of them.
set -euo pipefail
need=()
command -v memcached   >/dev/null 2>&1 || need+=(memcached)
command -v memccapable >/dev/null 2>&1 || need+=(libmemcached-tools)
command -v tchtest     >/dev/null 2>&1 || need+=(tokyocabinet-bin)
command -v nutcracker  >/dev/null 2>&1 || need+=(nutcracker) # twemproxy, for make bench-cluster
/usr/bin/python3 -c 'import pymemcache' >/dev/null 2>&1 || need+=(python3-pymemcache)
/usr/bin/python3 -c 'import pylibmc' >/dev/null 2>&1 || need+=(python3-pylibmc)
perl -MCache::Memcached -e1 >/dev/null 2>&1 || need+=(libcache-memcached-perl)
command -v iptables    >/dev/null 2>&1 || need+=(iptables)
command -v ip          >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-tools: need root to install: ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# nutcracker's package starts a system-wide twemproxy where systemd runs;
# the benchmark starts its own.
if [[ " ${need[*]} " == *" nutcracker "* ]] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now nutcracker >/dev/null 2>&1 || true
fi
