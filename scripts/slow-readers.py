#!/usr/bin/env python3
"""Slow readers: N clients each pipeline G gets of a 1 MB value and never
read their replies, while one more client gets a small key every 10 ms for
15 s and reports how long those gets took.

    scripts/slow-readers.py PORT [N [G [SMALL_PORT]]]

PORT is a memcached-protocol port (a kumo gateway, an embedded gateway, or
a memcached to compare with); SMALL_PORT, if given, is where the small gets
go (another gateway of the same cluster, to tell the gateway's queue from
the servers'). Defaults: N=200, G=2000. Prints the small gets' count,
median, 99th percentile and maximum latency. See docs/reliability.md (the
fetch budget) and docs/operations.md.
"""
import socket
import sys
import time


def main():
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    g = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    sport = int(sys.argv[4]) if len(sys.argv) > 4 else port
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    v = b"x" * 1000000
    s.sendall(b"set slow-readers-big 0 0 %d\r\n" % len(v) + v + b"\r\n")
    if f.readline() != b"STORED\r\n":
        sys.exit("storing the large value failed")
    s.close()
    s = socket.create_connection(("127.0.0.1", sport))
    f = s.makefile("rb")
    s.sendall(b"set slow-readers-small 0 0 1\r\ny\r\n")
    if f.readline() != b"STORED\r\n":
        sys.exit("storing the small value failed")
    bad = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port))
        c.setblocking(False)
        try:
            c.send(b"get slow-readers-big\r\n" * g)
        except BlockingIOError:
            pass
        bad.append(c)
    t0 = time.time()
    lat = []
    while time.time() - t0 < 15:
        t = time.time()
        s.sendall(b"get slow-readers-small\r\n")
        if not f.readline().startswith(b"VALUE"):
            sys.exit("small get failed")
        f.readline()
        if f.readline() != b"END\r\n":
            sys.exit("small get: no END")
        lat.append(time.time() - t)
        time.sleep(0.01)
    for c in bad:
        c.close()
    lat.sort()
    print("small gets %d  p50 %.1f ms  p99 %.1f ms  max %.1f ms" % (
        len(lat), lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, lat[-1] * 1e3))


if __name__ == "__main__":
    main()
