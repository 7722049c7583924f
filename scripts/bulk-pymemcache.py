#!/usr/bin/python3
"""Bulk load and bulk read through one pymemcache connection (BENCHMARKS.md).

usage: scripts/bulk-pymemcache.py NAME=HOST:PORT ...
50,000 keys of 100 bytes: set_many of 1000 keys with noreply, then one get;
get_many of 100 keys. Prints the medians of 3 rounds. Needs Debian's
python3-pymemcache (scripts/install-test-tools.sh installs it).
"""
import sys
import time

from pymemcache.client.base import Client


def main():
    for arg in sys.argv[1:]:
        name, addr = arg.split("=", 1)
        host, port = addr.rsplit(":", 1)
        c = Client((host, int(port)))
        keys = [f"bulk{i}" for i in range(50000)]
        val = b"v" * 100
        sets, gets = [], []
        for _ in range(3):
            t = time.time()
            for j in range(0, len(keys), 1000):
                c.set_many({k: val for k in keys[j:j + 1000]}, noreply=True)
            c.get(keys[-1])
            sets.append(len(keys) / (time.time() - t))
            t = time.time()
            for j in range(0, len(keys), 100):
                got = c.get_many(keys[j:j + 100])
                if len(got) != 100:
                    sys.exit(f"{name}: get_many returned {len(got)} of 100 keys")
            gets.append(len(keys) / (time.time() - t))
        print(f"{name}: set_many noreply {sorted(sets)[1]:.0f} sets/s, "
              f"get_many(100) {sorted(gets)[1]:.0f} keys/s (medians of 3)")


if __name__ == "__main__":
    main()
