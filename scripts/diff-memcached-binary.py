#!/usr/bin/env python3
"""Differential check of the binary protocol: random packets, quiet ones
included, sent to a kumo gateway and to a memcached, replies compared.

    scripts/diff-memcached-binary.py KUMO_PORT MEMCACHED_PORT [-n N] [-seed S] [-mode cas|touch] [-pipe P] [-progress K]

Each request (P packets) ends with a NOOP, and the replies are read up to
its answer, so quiet packets need no timing. Every packet's opaque is its
number within the request, so each reply is matched to the key it was
about; CAS uniques are renamed per key in order of first appearance (kumo's
and memcached's differ by design). Both modes send TOUCH, GAT, GATQ, GATK
and GATKQ (a touch keeps the CAS unique, in kumo as in memcached); mode
"cas" sends known and bogus CAS uniques, mode "touch" compares only whether
a CAS unique is zero. Both servers are flushed first. Prints
the first difference and exits 1, or exits 0; with -progress K also
"progress I" every K requests (a test can act on it).

Known noise: memcached 1.6.18 sometimes answers an incr or decr of a
stored number of 2^63 or more "non-numeric": its safe_strtoull (util.c)
looks for a '-' with strchr in the item's data, which has no NUL after
it, so whatever lies in memory after the item decides. Stored numbers
therefore stay below 2^63 (2^63-1 is the largest in the value pool);
deltas still wrap, and a wrap can leave one there. When the only
difference is that bug (memcached non-numeric, its value of the key still
a number of 2^63 or more, kumo's answer that number plus or minus the
delta) the script stops there: it prints "stopped at request N" and exits
0, since the two servers' values differ from then on.
"""
import random
import re
import socket
import struct
import sys

KEYS = [b"k0", b"k1", b"k2", b"num"]
PADDED = set()  # keys a counter may have left space-padded in memcached
BOGUS = 18446744073709551000  # a CAS unique neither server hands out

GET, SET, ADD, REPLACE, DELETE, INCR, DECR = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
FLUSH, GETQ, NOOP, VERSION, GETK, GETKQ, APPEND, PREPEND = 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F
SETQ, ADDQ, REPLACEQ, DELETEQ, INCRQ, DECRQ = 0x11, 0x12, 0x13, 0x14, 0x15, 0x16
APPENDQ, PREPENDQ, TOUCH, GAT, GATQ, GATK, GATKQ = 0x19, 0x1A, 0x1C, 0x1D, 0x1E, 0x23, 0x24
STORES = (SET, ADD, REPLACE, SETQ, ADDQ, REPLACEQ)
CATS = (APPEND, PREPEND, APPENDQ, PREPENDQ)
ARITH = (INCR, DECR, INCRQ, DECRQ)
GETS = (GET, GETQ, GETK, GETKQ)
TOUCHES = (TOUCH, GAT, GATQ, GATK, GATKQ)


def packet(op, key=b"", extras=b"", value=b"", opaque=0, cas=0):
    body = len(extras) + len(key) + len(value)
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0, body, opaque, cas) + extras + key + value


def text_get(port, key):
    """Returns the text protocol's answer to "get key" at port."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"get " + key + b"\r\n")
    b = b""
    while not b.endswith(b"END\r\n"):
        d = s.recv(65536)
        if not d:
            break
        b += d
    s.close()
    return b


class Conn:
    def __init__(self, port):
        self.port = port
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def _read(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def ask(self, req):
        """Sends req and a NOOP; returns the replies before the NOOP's,
        and "closed" in their place if the server hung up (after which
        the connection is made again)."""
        try:
            self.s.sendall(req + packet(NOOP, opaque=0xFFFFFFFF))
        except OSError:
            pass
        out = []
        while True:
            try:
                h = self._read(24)
            except (EOFError, OSError):
                self.s.close()
                self.__init__(self.port)
                out.append("closed")
                return out
            magic, op, klen, elen, _, status, body, opaque, cas = struct.unpack(">BBHBBHIIQ", h)
            try:
                rest = self._read(body)
            except (EOFError, OSError):
                self.s.close()
                self.__init__(self.port)
                out.append("closed")
                return out
            if op == NOOP and opaque == 0xFFFFFFFF:
                return out
            out.append((magic, op, status, opaque, cas, rest[:elen], rest[elen:elen + klen], rest[elen + klen:]))


def value(r):
    if r.random() < 0.3:
        return str(r.choice([0, 1, 9, 10, 99, 2**63 - 1, r.randrange(1000)])).encode()
    if r.random() < 0.05:
        return b""
    return bytes(r.choice(b"abcxyz") for _ in range(r.randrange(1, 10)))


def gen(r, mode, seen, opaque, last=True):
    """One packet and the key it is about. Malformed ones (which end the
    connection, dropping the packets after them) only when last."""
    k = r.choice(KEYS)
    cas = 0
    if mode == "cas" and r.random() < 0.3:
        cas = seen.get(k, BOGUS) if r.random() < 0.8 else BOGUS
    exp = r.choice([0, 0, 1000, 100000])
    c = r.random()
    if c < 0.3:
        op = r.choice(STORES)
        if op in (SET, SETQ) and cas == 0:  # a CAS may not match
            PADDED.discard(k)
        return packet(op, k, struct.pack(">II", r.choice([0, 7, 2**32 - 1]), exp), value(r), opaque, cas), k
    if c < 0.4:
        op = r.choice(CATS)
        if k in PADDED:  # a padded "0 " + "9" is not an unpadded "09" (see norm)
            if cas == 0:
                PADDED.discard(k)
            return packet(SET, k, struct.pack(">II", 0, 0), value(r), opaque, cas), k
        return packet(op, k, b"", value(r), opaque, cas), k
    if c < 0.6:
        return packet(r.choice(GETS), k, opaque=opaque), k
    if c < 0.68:
        return packet(r.choice((DELETE, DELETEQ)), k, opaque=opaque, cas=cas), k
    if c < 0.82:
        PADDED.add(k)
        delta = r.choice([0, 1, 5, 2**64 - 1])
        initial = r.choice([0, 7, 123])
        e = r.choice([0, 1000, 0xFFFFFFFF])
        return packet(r.choice(ARITH), k, struct.pack(">QQI", delta, initial, e), opaque=opaque, cas=cas), k
    if c < 0.9:
        return packet(r.choice(TOUCHES), k, struct.pack(">I", exp), opaque=opaque), k
    if c < 0.93:
        return packet(VERSION, opaque=opaque), None
    if c < 0.95 and last:
        # malformed: extras missing, or a key where none belongs
        return r.choice([packet(SET, k, b"", b"x", opaque), packet(INCR, k, b"", b"", opaque),
                         packet(NOOP, k, opaque=opaque), packet(GET, b"", opaque=opaque)]), k
    return packet(r.choice(GETS), k, opaque=opaque), k


class Renamer:
    """Renames CAS uniques per key in order of first appearance."""

    def __init__(self):
        self.m = {}

    def name(self, key, n):
        if n == 0:
            return "0"
        if (key, n) not in self.m:
            self.m[(key, n)] = "C%d" % (len(self.m) + 1)
        return self.m[(key, n)]

    def real(self, key, tok):
        for (k, n), t in self.m.items():
            if k == key and t == tok:
                return n
        return BOGUS


def norm(replies, keys, ren, mode):
    out = []
    for rep in replies:
        if rep == "closed":
            out.append(rep)
            continue
        magic, op, status, opaque, cas, extras, key, val = rep
        k = keys.get(opaque)
        if op == VERSION:
            val = b"<version>"
        if status == 0 and op in GETS + TOUCHES:
            # counters are space-padded when rewritten in place, which
            # memcached does not always do (diff-memcached.py's norm)
            val = val.replace(b" ", b"")
        c = ren.name(k, cas) if mode == "cas" else ("0" if cas == 0 else "c")
        out.append((hex(op), status, opaque, c, extras, key, val))
    return out


def strtoull_bug(na, nb, a, b, pk, keys, mport):
    """Whether memcached's replies b differ from kumo's a only by its
    safe_strtoull bug (the docstring): every reply that differs is
    memcached's "non-numeric" to an incr or decr of a key whose value it
    still holds as a number of 2^63 or more, and kumo's reply is absent (a
    quiet success) or that number plus or minus the delta."""
    if "closed" in a or "closed" in b:
        return False
    ka = {rep[3]: rep for rep in a}
    mb = {rep[3]: rep for rep in b}
    nka = {rep[2]: rep for rep in na}
    nmb = {rep[2]: rep for rep in nb}
    if len(ka) != len(a) or len(mb) != len(b):
        return False
    found = False
    for j in set(ka) | set(mb):
        x, y = ka.get(j), mb.get(j)
        if nka.get(j) == nmb.get(j):
            continue
        if y is None or y[1] not in ARITH or y[2] != 6 or keys.get(j) is None:
            return False
        m = re.fullmatch(rb"VALUE \S+ \d+ \d+\r\n(\d+) *\r\nEND\r\n", text_get(mport, keys[j]))
        if not m or int(m.group(1)) < 2**63:
            return False
        pre = int(m.group(1))
        delta = struct.unpack(">Q", pk[j][24:32])[0]
        want = (pre + delta) % 2**64 if y[1] in (INCR, INCRQ) else max(pre - delta, 0)
        if x is None:
            if y[1] not in (INCRQ, DECRQ):
                return False
        elif x[2] != 0 or x[7] != struct.pack(">Q", want):
            return False
        found = True
    return found


def main():
    args = sys.argv[1:]
    kport, mport = int(args[0]), int(args[1])
    n, seed, mode, pipe, progress = 1000, 1, "cas", 1, 0
    for i in range(2, len(args), 2):
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
    r = random.Random(seed)
    kc, mc = Conn(kport), Conn(mport)
    for c in (kc, mc):
        c.ask(packet(FLUSH, extras=struct.pack(">I", 0)))
    kr, mr = Renamer(), Renamer()
    seen = {}  # key -> memcached CAS unique last seen
    hist = []
    for step in range(n):
        if progress and step and step % progress == 0:
            print("progress %d" % step, flush=True)
        pk, keys = [], {}
        for j in range(pipe):
            p, k = gen(r, mode, seen, j, j == pipe - 1)
            pk.append(p)
            keys[j] = k
        mreq = b"".join(pk)
        # kumo gets its own CAS unique for the version memcached's names.
        kpk = []
        for j, p in enumerate(pk):
            c = struct.unpack(">Q", p[16:24])[0]
            if c:
                tok = mr.name(keys[j], c) if (keys[j], c) in mr.m else None
                c = kr.real(keys[j], tok) if tok else BOGUS
                p = p[:16] + struct.pack(">Q", c) + p[24:]
            kpk.append(p)
        a, b = kc.ask(b"".join(kpk)), mc.ask(mreq)
        na, nb = norm(a, keys, kr, mode), norm(b, keys, mr, mode)
        for rep in b:
            if rep == "closed":
                continue
            magic, op, status, opaque, cas, extras, key, val = rep
            if cas and keys.get(opaque) is not None and status == 0:
                seen[keys[opaque]] = cas
        hist.append(mreq)
        if na != nb and strtoull_bug(na, nb, a, b, pk, keys, mport):
            print("stopped at request %d: memcached's safe_strtoull bug (the script's doc); no difference before it (binary, seed %d, mode %s, pipe %d)" % (step + 1, seed, mode, pipe))
            return
        if na != nb:
            print("difference at request %d (seed %d, mode %s, pipe %d):" % (step + 1, seed, mode, pipe))
            for h in hist[-4:]:
                print("  >", h.hex())
            print("  kumo:     ", na)
            print("  memcached:", nb)
            print("  values now (text get on a new connection):")
            for key in KEYS:
                print("   ", key, "kumo", text_get(kport, key), "memcached", text_get(mport, key))
            sys.exit(1)
    print("%d requests, no difference (binary, seed %d, mode %s, pipe %d)" % (n, seed, mode, pipe))


if __name__ == "__main__":
    main()
