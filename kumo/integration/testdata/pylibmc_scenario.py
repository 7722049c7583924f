"""A scripted scenario with libmemcached through pylibmc (Debian
python3-pylibmc) against a kumo gateway, in the text and the binary
protocol: multi-key sets, gets and deletes (binary: runs of GETKQ and a
NOOP), counters, add/replace, append, gets/cas. Usage:
python3 pylibmc_scenario.py HOST:PORT
Prints 'N passed, N failed' and exits non-zero on any failure."""
import os
import sys
import pylibmc

addr = sys.argv[1]
passed = failed = 0


def call(f, *args):
    """f(*args), or the name of the pylibmc error it raised."""
    try:
        return f(*args)
    except pylibmc.Error as e:
        return type(e).__name__


def check(name, got, want):
    global passed, failed
    if got == want:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: got {got!r}, want {want!r}")


for binary in (False, True):
    p = ("bin-" if binary else "txt-") + str(os.getpid()) + "-"
    mc = pylibmc.Client([addr], binary=binary, behaviors={"cas": True})
    keys = [f"{p}k{i}" for i in range(300)]
    data = {k: (k * (i % 40 + 1)).encode() for i, k in enumerate(keys)}
    check(p + "set_multi", mc.set_multi(data), [])
    check(p + "get_multi", mc.get_multi(keys + [p + "missing1", p + "missing2"]), data)
    check(p + "delete_multi", mc.delete_multi(keys[:100]), True)
    check(p + "get_multi after delete", mc.get_multi(keys), {k: data[k] for k in keys[100:]})
    check(p + "get deleted", mc.get(keys[0]), None)
    check(p + "get kept", mc.get(keys[299]), data[keys[299]])

    mc.set(p + "n", b"10")
    check(p + "incr", mc.incr(p + "n", 5), 15)
    check(p + "decr", mc.decr(p + "n", 20), 0)
    check(p + "add existing", mc.add(p + "n", b"1"), False)
    check(p + "add new", mc.add(p + "new", b"1"), True)
    # The binary protocol reports a failed replace as an error, text as False.
    check(p + "replace missing", call(mc.replace, p + "nokey", b"1"), "NotFound" if binary else False)
    check(p + "replace", mc.replace(p + "new", b"2"), True)
    check(p + "append", mc.append(p + "new", b"3"), True)
    check(p + "after append", mc.get(p + "new"), b"23")

    val, cas = mc.gets(p + "new")
    check(p + "gets", val, b"23")
    check(p + "cas ok", mc.cas(p + "new", b"4", cas), True)
    check(p + "cas stale", mc.cas(p + "new", b"5", cas), False)
    check(p + "after cas", mc.get(p + "new"), b"4")

    # Flags round trip: pylibmc stores ints and pickled objects with flags.
    mc.set(p + "int", 42)
    mc.set(p + "obj", {"a": [1, 2]})
    check(p + "int", mc.get(p + "int"), 42)
    check(p + "obj", mc.get(p + "obj"), {"a": [1, 2]})

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
