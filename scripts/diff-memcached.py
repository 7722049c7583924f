#!/usr/bin/env python3
"""Differential check: random memcached text and meta commands sent one at a
time to a kumo gateway and to a memcached, replies compared.

    scripts/diff-memcached.py KUMO_PORT MEMCACHED_PORT [-n N] [-seed S] [-mode cas|touch] [-pipe P] [-progress K]

Each request (one command, or P pipelined ones with -pipe) is followed by
"mn" and the reply read up to its "MN", so noreply and quiet commands need
no timing. CAS uniques differ between the
two servers by design; they are renamed in order of first appearance
(C1, C2, ...) on each side, so the same sequence of versions compares
equal. Both modes have touch, gat and gats and mg T (a touch keeps the CAS
unique, in kumo as in memcached), and the stale items and win tokens of md I,
ms I and mg N (handing out a token keeps the CAS unique too) one command at
a time only (memcached rewrites a counter in place, keeping its stale mark,
only if no reply still being sent refers to the item: in a pipeline after an
mg it makes a new one). Mode "cas" compares CAS uniques, mode "touch" none. Expiry times are far in the future
(no timing); "t" (TTL) flags are compared as present/absent, not by value.
Keys of both servers should start empty: the script flushes both first.
Prints the first differences with the commands that led there and exits 1,
or prints "N requests, no difference" and exits 0; with -progress K also
"progress I" every K requests (a test can act on it).

Known noise: memcached 1.6.18 sometimes answers an incr or decr of a
stored number of 2^63 or more "non-numeric": its safe_strtoull (util.c)
looks for a '-' with strchr in the item's data, which has no NUL after
it, so whatever lies in memory after the item decides. Stored numbers
therefore stay below 2^63 (2^63-1 is the largest in the value pool);
deltas still wrap, and a wrap can leave one there. When a single command
(not pipelined) differs only by that bug (memcached non-numeric, its value
of the key still a number of 2^63 or more, kumo's incr or decr answer
that number plus or minus the delta, or an ma's success) the script stops
there: it prints "stopped at request N" and exits 0, since the two
servers' values differ from then on.
"""
import random
import re
import socket
import sys

KEYS = [b"k0", b"k1", b"k2", b"num", b"n2"]
PADDED = set()  # keys a decrement may have left padded in memcached
# A CAS unique neither server hands out: memcached counts up from 1, kumo's
# are clocks below 2^63.
BOGUS = b"18446744073709551000"
# Keys an I flag may have made stale: memcached rewrites a counter in place,
# keeping the stale mark, only when no reply still being sent refers to the
# item, which depends on its timing; no incr or decr on them until a set.
STALE = set()


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def ask(self, req):
        self.s.sendall(req + b"mn\r\n")
        while not self.buf.endswith(b"MN\r\n"):
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed after %r" % req)
            self.buf += d
        out, self.buf = self.buf[:-4], b""
        return out


def value(r):
    kind = r.random()
    if kind < 0.3:
        return str(r.choice([0, 1, 9, 10, 99, 2**32, 2**63 - 1, r.randrange(1000)])).encode()
    if kind < 0.35:
        return b""
    if kind < 0.4:
        return b"12a"
    return bytes(r.choice(b"abcxyz") for _ in range(r.randrange(1, 12)))


def named(pick, alone):
    """With several commands in flight, a meta reply that shows a CAS
    unique also names its key (k), so that it can be renamed per key."""
    if not alone and b"c" in pick and b"k" not in pick:
        pick.append(b"k")
    return pick


def gen(r, mode, cas_seen, alone):
    k = r.choice(KEYS)
    nr = b" noreply" if r.random() < 0.15 else b""
    flags = str(r.choice([0, 0, 1, 42, 2**32 - 1])).encode()
    exp = r.choice([b"0", b"0", b"1000", b"100000"])
    c = r.random()
    if r.random() < 0.05:
        req = r.choice(BAD + (BAD_ALONE if alone else []))(r, k)
        if req.split(b" ")[0] in (b"incr", b"decr", b"ma"):
            PADDED.add(k)
        return req
    if c < 0.25:
        op = r.choice([b"set", b"add", b"replace", b"append", b"prepend"])
        v = value(r)
        if op in (b"append", b"prepend") and k in PADDED:
            # memcached's padded counter "0 " + "99" reads as 0, and one it
            # made anew (unpadded, see norm) "099" as 99
            op = b"set"
        if op == b"set":
            PADDED.discard(k)
            STALE.discard(k)
        return b"%s %s %s %s %d%s\r\n%s\r\n" % (op, k, flags, exp, len(v), nr, v)
    if c < 0.32 and mode == "cas":
        v = value(r)
        cas = cas_seen.get(k, BOGUS) if r.random() < 0.7 else BOGUS
        return b"cas %s %s %s %d %s%s\r\n%s\r\n" % (k, flags, exp, len(v), cas, nr, v)
    if c < 0.45:
        ks = b" ".join(r.sample(KEYS, r.randrange(1, 4)))
        op = b"gets" if mode == "cas" and r.random() < 0.5 else b"get"
        return b"%s %s\r\n" % (op, ks)
    if c < 0.52:
        STALE.discard(k)
        return b"delete %s%s\r\n" % (k, nr)
    if (0.62 > c >= 0.52 or c >= 0.91) and k in STALE:
        return b"get %s\r\n" % k
    if c < 0.62:
        op = r.choice([b"incr", b"decr"])
        PADDED.add(k)  # a decr, or an incr wrapping at 2^64, shrinks the number
        d = r.choice([b"0", b"1", b"5", b"18446744073709551615", b"-1", b"x"])
        return b"%s %s %s%s\r\n" % (op, k, d, nr)
    if c < 0.66:
        if r.random() < 0.5:
            return b"touch %s %s%s\r\n" % (k, exp, nr)
        op = b"gats" if r.random() < 0.3 else b"gat"
        return b"%s %s %s\r\n" % (op, exp, b" ".join(r.sample(KEYS, r.randrange(1, 3))))
    if c < 0.76:
        fl = [b"v", b"f", b"k", b"s", b"q", b"O123", b"t"]
        if mode == "cas":
            fl.append(b"c")
        fl.append(b"T" + exp)
        if r.random() < 0.1 and alone:
            fl.append(b"N30")
        pick = named(r.sample(fl, r.randrange(0, 4)), alone)
        return b"mg %s%s\r\n" % (k, b"".join(b" " + f for f in pick))
    if c < 0.86:
        v = value(r)
        fl = [b"F" + flags, b"T" + exp, b"q", b"k", b"O7"]
        if alone:
            fl.append(b"I")
        if mode == "cas":
            fl += [b"c", b"C" + cas_seen.get(k, BOGUS)]
        fl.append(b"M" + r.choice([b"E", b"A", b"P", b"R", b"S", b"X"]))
        pick = named(r.sample(fl, r.randrange(0, 4)), alone)
        if k in PADDED:
            pick = [b"MS" if f in (b"MA", b"MP") else f for f in pick]
        if b"I" in pick:
            STALE.add(k)
        return b"ms %s %d%s\r\n%s\r\n" % (k, len(v), b"".join(b" " + f for f in pick), v)
    if c < 0.91:
        fl = [b"q", b"k", b"O9", b"T30"]
        if alone:
            fl.append(b"I")
        if mode == "cas":
            fl.append(b"C" + cas_seen.get(k, BOGUS))
        pick = named(r.sample(fl, r.randrange(0, 3)), alone)
        if b"I" in pick:
            STALE.add(k)
        return b"md %s%s\r\n" % (k, b"".join(b" " + f for f in pick))
    fl = [b"N0", b"J13", b"D7", b"MI", b"MD", b"M+", b"M-", b"v", b"t", b"k", b"q", b"O5"]
    if mode == "cas":
        fl.append(b"c")
    pick = named(r.sample(fl, r.randrange(0, 4)), alone)
    PADDED.add(k)
    return b"ma %s%s\r\n" % (k, b"".join(b" " + f for f in pick))


# A get with a key too long (memcached drops the replies of every earlier
# command of the same pipelined read with it: run one at a time only).
BAD_ALONE = [lambda r, k: b"gets %s\r\n" % (b"y" * 251)]

BAD = [
    lambda r, k: b"set %s 0 0 %d\r\n%s\r\n" % (b"x" * 251, 1, b"a"),
    lambda r, k: b"set %s 0 0 -1\r\n" % k,
    lambda r, k: b"set %s abc 0 1\r\na\r\n" % k,
    lambda r, k: b"set %s 0 0 1\r\n" % k + b"abc\r\n",
    lambda r, k: b"set %s 0 0\r\n" % k,
    lambda r, k: b"get\r\n",
    lambda r, k: b"incr %s\r\n" % k,
    lambda r, k: b"incr %s 1 2 3\r\n" % k,
    lambda r, k: b"delete %s 0\r\n" % k,
    lambda r, k: b"delete %s 5\r\n" % k,
    lambda r, k: b"delete %s 0 noreply\r\n" % k,
    lambda r, k: b"touch %s\r\n" % k,
    lambda r, k: b"bogus %s\r\n" % k,
    lambda r, k: b"mg\r\n",
    lambda r, k: b"mg %s zz\r\n" % k,
    lambda r, k: b"mg %s v v\r\n" % k,
    lambda r, k: b"ms %s\r\n" % k,
    lambda r, k: b"ms %s x\r\n" % k,
    lambda r, k: b"ms %s 2 MZ\r\nab\r\n" % k,
    lambda r, k: b"ma %s N-1\r\n" % k,
    lambda r, k: b"ma %s Dx\r\n" % k,
    lambda r, k: b"md %s Cx\r\n" % k,
    lambda r, k: b"cas %s 0 0 1\r\na\r\n" % k,
    lambda r, k: b"cas %s 0 0 1 -5\r\na\r\n" % k,
    lambda r, k: b"verbosity\r\n",
    lambda r, k: b"verbosity 1\r\n",
    lambda r, k: b"GET %s\r\n" % k,
    lambda r, k: b"get %s\n" % k,
    lambda r, k: b"set %s 0 0 1 noreply\r\nab\r\n" % k,
    lambda r, k: b"set %s 4294967296 0 1\r\na\r\n" % k,
    lambda r, k: b"incr %s 18446744073709551616\r\n" % k,
    lambda r, k: b"set %s 0 -1 1\r\nx\r\n" % k,
    lambda r, k: b"touch %s -1\r\n" % k,
    lambda r, k: b"flush_all noreply\r\n",
    lambda r, k: b"flush_all 0\r\n",
    lambda r, k: b"mg %s b\r\n" % k,
    lambda r, k: b"mg YWJj b v k\r\n",
    lambda r, k: b"ms YWJj 2 b\r\nhi\r\n",
    lambda r, k: b"md YWJj b q\r\n",
    lambda r, k: b"ma %s MI N0 J5 v\r\n" % k,
    lambda r, k: b"cas %s 0 0 1 0\r\nx\r\n" % k,
    lambda r, k: b"incr %s 00001\r\n" % k,
    lambda r, k: b"decr %s 18446744073709551615\r\n" % k,
    lambda r, k: b"set %s 0 0 1 noreply extra\r\nx\r\n" % k,
    lambda r, k: b"get %s %s %s %s\r\n" % (k, k, k, k),
    lambda r, k: b"delete %s noreply extra\r\n" % k,
    lambda r, k: b"touch %s 0 noreply extra\r\n" % k,
    lambda r, k: b"gat\r\n",
    lambda r, k: b"gat abc %s\r\n" % k,
]


class Renamer:
    """Renames CAS uniques in order of first appearance, per key (kumo's
    uniques are versions, unique per key, not across keys)."""

    def __init__(self, erase=False):
        self.m = {}  # (key or None, unique) -> token
        self.erase = erase  # every unique becomes "C" (mode touch)

    def name(self, key, n):
        if self.erase:
            return b"C"
        if (key, n) not in self.m:
            self.m[(key, n)] = b"C%d" % (len(self.m) + 1)
        return self.m[(key, n)]

    def norm(self, reply, k):
        # Both rewrite a counter that still fits in place, padded with
        # spaces ("3 "), and appends keep the padding inside the value;
        # but memcached makes the counter anew, unpadded, when a reply
        # that refers to the item has not been released yet (timing:
        # seen in the binary check, one run in two at one request).
        # Generated values have no spaces: compare them without.
        lines = reply.split(b"\r\n")
        for i in range(len(lines) - 1):
            w = lines[i].split(b" ")
            if (w[0] == b"VALUE" and len(w) >= 4) or (w[0] == b"VA" and len(w) >= 2):
                data = lines[i + 1].replace(b" ", b"")
                w[3 if w[0] == b"VALUE" else 1] = b"%d" % len(data)
                lines[i], lines[i + 1] = b" ".join(w), data
        reply = b"\r\n".join(lines)
        out = []
        for line in reply.split(b"\r\n"):
            w = line.split(b" ")
            if w[0] == b"VALUE" and len(w) == 5:
                w[4] = self.name(w[1], w[4])
            elif w[0] in (b"VA", b"HD", b"EN", b"NF", b"NS", b"EX"):
                key = next((x[1:] for x in w[1:] if x.startswith(b"k")), k)
                for i in range(1, len(w)):
                    if w[i].startswith(b"c") and w[i][1:].isdigit():
                        w[i] = b"c" + self.name(key, w[i][1:])
                    elif w[i].startswith(b"t") and re.fullmatch(rb"t-?\d+", w[i]):
                        w[i] = b"t" if w[i] != b"t-1" else b"t-1"
                    elif re.fullmatch(rb"s\d+", w[i]):
                        w[i] = b"s"  # a padded counter is longer in memcached
            out.append(b" ".join(w))
        return b"\r\n".join(out)


def last_cas(norm, k, cas_seen):
    """Notes the CAS tokens a normalized reply shows, per key."""
    for line in norm.split(b"\r\n"):
        w = line.split(b" ")
        if w[0] == b"VALUE" and len(w) == 5:
            cas_seen[w[1]] = b"<" + w[4] + b">"
        elif w[0] in (b"VA", b"HD") and k is not None:
            for x in w[1:]:
                if x.startswith(b"cC"):
                    cas_seen[k] = b"<" + x[1:] + b">"


def concrete(req, ren):
    """Replaces the <Cn> tokens of req by ren's CAS uniques (unknown: BOGUS)."""
    inv = {v: kk[1] for kk, v in ren.m.items()}
    return re.sub(rb"<(C\d+)>", lambda m: inv.get(m.group(1), BOGUS), req)


NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"


def strtoull_bug(req, a, b, k, mport):
    """Whether memcached's reply b to the single command req differs from
    kumo's a only by memcached's safe_strtoull bug (the docstring)."""
    w = req.split(b"\r\n")[0].split(b" ")
    if w[0] not in (b"incr", b"decr", b"ma") or b != NON_NUMERIC or k is None:
        return False
    s = socket.create_connection(("127.0.0.1", mport))
    s.sendall(b"get " + k + b"\r\n")
    got = b""
    while not got.endswith(b"END\r\n"):
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    m = re.fullmatch(rb"VALUE \S+ \d+ \d+\r\n(\d+) *\r\nEND\r\n", got)
    if not m or int(m.group(1)) < 2**63:
        return False
    if w[0] == b"ma":
        return a.startswith((b"HD", b"VA"))
    if len(w) != 3 or not w[2].isdigit():
        return False
    pre, delta = int(m.group(1)), int(w[2])
    want = (pre + delta) % 2**64 if w[0] == b"incr" else max(pre - delta, 0)
    return a == b"%d\r\n" % want


def main():
    args = sys.argv[1:]
    kport, mport = int(args[0]), int(args[1])
    n, seed, mode, pipe, progress = 2000, 1, "cas", 1, 0
    i = 2
    while i < len(args):
        if args[i] == "-n":
            n = int(args[i + 1])
        elif args[i] == "-seed":
            seed = int(args[i + 1])
        elif args[i] == "-mode":
            mode = args[i + 1]
        elif args[i] == "-pipe":
            pipe = int(args[i + 1])
        elif args[i] == "-progress":
            progress = int(args[i + 1])
        i += 2
    r = random.Random(seed)
    kc, mc = Conn(kport), Conn(mport)
    for c in (kc, mc):
        c.ask(b"flush_all\r\n")
    kr, mr = Renamer(mode == "touch"), Renamer(mode == "touch")
    seen = {}
    hist, replies = [], []
    for step in range(n):
        if progress and step and step % progress == 0:
            print("progress %d" % step, flush=True)
        req = b"".join(gen(r, mode, seen, pipe == 1) for _ in range(pipe))
        w = req.split(b"\r\n")[0].split(b" ")
        # With several commands in flight, a meta reply's CAS cannot be
        # told apart by key: only VALUE lines (which name it) are noted.
        k = w[1] if len(w) > 1 and pipe == 1 else None
        kreq, mreq = concrete(req, kr), concrete(req, mr)
        a, b = kc.ask(kreq), mc.ask(mreq)
        na, nb = kr.norm(a, k), mr.norm(b, k)
        last_cas(nb, k, seen)
        hist.append(mreq)
        replies.append((a, b))
        if na != nb and pipe == 1 and strtoull_bug(req, a, b, k, mport):
            print("stopped at request %d: memcached's safe_strtoull bug (the script's doc); no difference before it (seed %d, mode %s, pipe %d)" % (step + 1, seed, mode, pipe))
            return
        if na != nb:
            print("difference at request %d (seed %d, mode %s, pipe %d):" % (step + 1, seed, mode, pipe))
            for h in hist[-6:]:
                print("  >", h)
            if k is None:
                # Pipelined: the earlier requests naming a key of this one,
                # with memcached's replies.
                keys = set(re.findall(rb"(?:^|\n)\w+ (\w+)", req))
                print("  earlier requests on %s, and kumo's (k<) and memcached's (m<) replies:" % b",".join(sorted(keys)).decode())
                old = [(h, rep) for h, rep in zip(hist[:-6], replies[:-6])
                       if any((b" " + kk + b" ") in h or (b" " + kk + b"\r") in h for kk in keys)]
                for h, (ra, rb) in old[-8:]:
                    print("  > ", h)
                    print("  k<", ra)
                    print("  m<", rb)
            if k is not None:
                print("  earlier commands on %r:" % k)
                for h in [h for h in hist[:-6] if (b" " + k + b" ") in h or (b" " + k + b"\r") in h][-10:]:
                    print("  >", h)
            print("  kumo:     ", a)
            print("  memcached:", b)
            sys.exit(1)
    print("%d requests, no difference (seed %d, mode %s, pipe %d)" % (n, seed, mode, pipe))


if __name__ == "__main__":
    main()
