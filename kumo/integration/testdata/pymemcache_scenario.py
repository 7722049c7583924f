"""A scripted scenario with a real client library (Debian python3-pymemcache)
against a kumo gateway. Usage: python3 pymemcache_scenario.py HOST:PORT
Prints 'N passed, N failed' and exits non-zero on any failure."""
import sys, time
from pymemcache.client.base import Client

host, port = sys.argv[1].rsplit(":", 1)
c = Client((host, int(port)), connect_timeout=5, timeout=15)
passed = failed = 0

def check(name, got, want):
    global passed, failed
    if got == want:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: got {got!r}, want {want!r}")

c.set("py-a", b"1")
c.set("py-b", b"2")
c.set("py-c", b"3")
check("get_many", c.get_many(["py-a", "py-b", "py-c", "py-missing"]),
      {"py-a": b"1", "py-b": b"2", "py-c": b"3"})

val, cas = c.gets("py-a")
check("gets value", val, b"1")
check("cas ok", c.cas("py-a", b"10", cas), True)
check("cas stale", c.cas("py-a", b"11", cas), False)
check("after cas", c.get("py-a"), b"10")
check("cas missing", c.cas("py-nokey", b"x", 1), None)

c.set("py-n", b"41")
check("incr", c.incr("py-n", 1), 42)
check("decr", c.decr("py-n", 50), 0)
check("incr missing", c.incr("py-nokey", 1), None)

check("add new", c.add("py-add", b"x", noreply=False), True)
check("add existing", c.add("py-add", b"y", noreply=False), False)
check("replace existing", c.replace("py-add", b"z", noreply=False), True)
check("replace missing", c.replace("py-norep", b"z", noreply=False), False)
check("after replace", c.get("py-add"), b"z")

c.set("py-flags", b"v", flags=0xdeadbeef, noreply=False)
raw = Client((host, int(port)), connect_timeout=5, timeout=15,
             deserializer=lambda key, value, flags: (value, flags))
check("flags round trip", raw.get("py-flags"), (b"v", 0xdeadbeef))

# Expiry has one-second granularity (as in memcached): a TTL of 1 may end
# a millisecond later at a second boundary, so give the first read 2.
c.set("py-exp", b"soon", expire=2)
check("before expiry", c.get("py-exp"), b"soon")
deadline = time.time() + 6
while c.get("py-exp") is not None and time.time() < deadline:
    time.sleep(0.1)
check("after expiry", c.get("py-exp"), None)

check("delete", c.delete("py-b", noreply=False), True)
check("delete missing", c.delete("py-b", noreply=False), False)
check("deleted gone", c.get("py-b"), None)
check("touch", c.touch("py-c", 100, noreply=False), True)

# pymemcache sends add, replace and touch with noreply by default, so a
# loop of them is a pipeline: the gateway serves it in windows.
keys = ["py-p%d" % i for i in range(300)]
for i, k in enumerate(keys):
    c.add(k, b"a%d" % i)
for i, k in enumerate(keys[::2]):
    c.add(k, b"again")  # exists: not stored
    c.replace(k, b"r%d" % (2 * i))
for k in keys:
    c.touch(k, 1000)
c.touch("py-p-missing", 1000)
got = c.get_many(keys)
want = {k: (b"r%d" % i if i % 2 == 0 else b"a%d" % i) for i, k in enumerate(keys)}
check("pipelined add, replace, touch", got, want)
check("pipelined add of a missing key", c.add("py-p-new", b"n", noreply=False), True)
check("touched missing key", c.get("py-p-missing"), None)

# append and prepend are noreply by default too: across keys they share
# windows, on one key they go one by one, in order.
for i, k in enumerate(keys[:100]):
    c.append(k, b">")
    c.prepend(k, b"<")
want = {k: b"<" + want[k] + b">" for k in keys[:100]}
check("pipelined append and prepend", c.get_many(keys[:100]), want)
c.set("py-log", b"[", noreply=False)
for i in range(50):
    c.append("py-log", b"%d," % (i % 10))
check("pipelined appends to one key", c.get("py-log"), b"[" + b"".join(b"%d," % (i % 10) for i in range(50)))

# Counters bumped with noreply: a pipeline of incr and decr, in windows.
c.set("py-ctr", b"0", noreply=False)
for i in range(500):
    c.incr("py-ctr", 2, noreply=True)
    if i % 5 == 0:
        c.decr("py-ctr", 1, noreply=True)
c.incr("py-ctr-missing", 1, noreply=True)
check("pipelined incr and decr", c.get("py-ctr"), b"900")
check("pipelined incr of a missing key", c.get("py-ctr-missing"), None)
check("version", c.version().startswith(b"1.6"), True)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
