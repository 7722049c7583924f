#!/usr/bin/env python3
# bench-incr-one.py PORT: 20,000 pymemcache incr(noreply) of one counter, then
# a version as the barrier; checks the counter and prints increments a second.
import sys, time
from pymemcache.client.base import Client
port=int(sys.argv[1]); n=20000
c = Client(("127.0.0.1", port), timeout=30)
c.set("nr-counter", b"0")
t=time.time()
for i in range(n):
    c.incr("nr-counter", 1, noreply=True)
c.version()
el=time.time()-t
assert c.get("nr-counter")==str(n).encode(), c.get("nr-counter")
print(f"{port} {n/el:.0f}/s")
