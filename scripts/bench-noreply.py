#!/usr/bin/env python3
"""Pipelined noreply requests through a real client library (Debian's
python3-pymemcache, which sends set, add, touch and delete with noreply by
default): 20,000 of each kind against one memcached-protocol server, a
`version` as the barrier, ops/s per kind. Run it against memcached and kumo
side by side; the Python client itself bounds the fastest servers.

Usage: python3 scripts/bench-noreply.py PORT [N]"""
import sys
import time

from pymemcache.client.base import Client

port = int(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
c = Client(("127.0.0.1", port), connect_timeout=5, timeout=30)
v = b"x" * 1024
ops = {
    "set_noreply": lambda k: c.set(k, v, noreply=True),
    "set_reply": lambda k: c.set(k, v, noreply=False),
    "add_noreply": lambda k: c.add("a" + k, v, noreply=True),
    "incr_noreply": lambda k: c.incr("nr-counter", 1, noreply=True),
    "touch_noreply": lambda k: c.touch(k, 100, noreply=True),
    "delete_noreply": lambda k: c.delete(k, noreply=True),
}
c.set("nr-counter", b"0")
for name, op in ops.items():
    t = time.time()
    for i in range(n):
        op("nr%d" % i)
    c.version()  # every reply before it has arrived
    print(f"{port} {name:15s} {n / (time.time() - t):9.0f}/s")
