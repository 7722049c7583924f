package server

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
	"kumofs/store"
)

// Ensure that the dedup table remembers and updates outcomes and forgets
// the oldest first.
func TestDedupTable(t *testing.T) {
	d := newDedupTable()
	d.keep = 0 // a ring of fixed size
	if _, ok := d.get(1); ok {
		t.Fatal("empty table knows id 1")
	}
	d.put(1, dedupEntry{clock: 10, num: 5})
	d.put(1, dedupEntry{clock: 11, num: 5}) // re-stamped: updated, not added twice
	if e, ok := d.get(1); !ok || e.clock != 11 || e.num != 5 {
		t.Fatalf("id 1: %+v %v", e, ok)
	}
	for id := uint64(2); id <= dedupSize+1; id++ {
		d.put(id, dedupEntry{clock: id})
	}
	if _, ok := d.get(1); ok {
		t.Fatal("the oldest id survived a full turn")
	}
	if e, ok := d.get(dedupSize + 1); !ok || e.clock != dedupSize+1 {
		t.Fatalf("newest id: %+v %v", e, ok)
	}
	if len(d.m) != dedupSize {
		t.Fatalf("%d entries, want %d", len(d.m), dedupSize)
	}
	id, e, err := readDedup(appendDedup(nil, 7, &dedupEntry{num: 3, created: true, oldExp: 9}))
	if err != nil || id != 7 || e.num != 3 || !e.created || e.oldExp != 9 {
		t.Fatalf("round trip: %d %+v %v", id, e, err)
	}
}

func arithWithID(key string, delta, id uint64) func([]byte) []byte {
	return func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 10)
		b = msgpack.AppendRaw(b, dbkey(key))
		b = msgpack.AppendUint(b, delta)
		b = msgpack.AppendBool(b, false)
		b = msgpack.AppendBool(b, true) // create
		b = msgpack.AppendUint(b, 100)
		b = msgpack.AppendUint(b, 0)
		b = msgpack.AppendUint(b, 0)
		b = msgpack.AppendBool(b, false)
		b = msgpack.AppendUint(b, 0)
		return msgpack.AppendUint(b, id)
	}
}

// appendWithID is a SrvStore appending data to key with request id id.
func appendWithID(key, data string, id uint64) func([]byte) []byte {
	return storeWithID(wire.OpAppend, key, data, 0, id)
}

// storeWithID is a SrvStore with mode op of data under key, compared with
// cas, with request id id.
func storeWithID(op uint64, key, data string, cas, id uint64) func([]byte) []byte {
	return func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 5)
		b = msgpack.AppendUint(b, op)
		b = msgpack.AppendRaw(b, dbkey(key))
		v := wire.Value{Data: []byte(data)}
		b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
		b = wire.AppendDBValue(b, &v)
		b = msgpack.AppendUint(b, cas)
		return msgpack.AppendUint(b, id)
	}
}

// Ensure that an add or cas sent again with its request id after it
// stored the item is answered with its first outcome (stored, the CAS of
// the version it made), not NOT_STORED or EXISTS from its own item, and
// that an add that failed leaves no id: its retry fails the same way.
func TestDedupConditionalStores(t *testing.T) {
	_, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	store := func(op uint64, key, data string, cas, id uint64) (st, ct uint64) {
		t.Helper()
		_, p, err := msgpack.ReadArrayHeader(call(t, cl, wire.SrvStore, storeWithID(op, key, data, cas, id)))
		if err == nil {
			st, p, err = msgpack.ReadUint(p)
		}
		if err == nil && st == wire.StatusOK {
			ct, _, err = msgpack.ReadUint(p)
		}
		if err != nil {
			t.Fatal(err)
		}
		return st, ct
	}
	st, c1 := store(wire.OpAdd, "a", "1", 0, 71)
	if st != wire.StatusOK {
		t.Fatalf("add: status %d", st)
	}
	if st, c := store(wire.OpAdd, "a", "1", 0, 71); st != wire.StatusOK || c != c1 {
		t.Fatalf("the add again: status %d clock %x, want stored at %x", st, c, c1)
	}
	if st, _ := store(wire.OpAdd, "a", "1", 0, 72); st != wire.StatusNotStored {
		t.Fatalf("another add: status %d, want not stored", st)
	}
	if st, _ := store(wire.OpAdd, "a", "1", 0, 72); st != wire.StatusNotStored {
		t.Fatalf("that add again: status %d, want not stored", st)
	}
	st, c2 := store(wire.OpCAS, "a", "2", c1, 73)
	if st != wire.StatusOK {
		t.Fatalf("cas: status %d", st)
	}
	if st, c := store(wire.OpCAS, "a", "2", c1, 73); st != wire.StatusOK || c != c2 {
		t.Fatalf("the cas again: status %d clock %x, want stored at %x", st, c, c2)
	}
	if st, _ := store(wire.OpCAS, "a", "2", c1, 74); st != wire.StatusExists {
		t.Fatalf("a cas with the old unique: status %d, want exists", st)
	}
}

// replicateWithID is a SrvReplicateSet of v under key, from a coordinator
// deciding under s's write hash space, with request id id and outcome e.
func replicateWithID(s *Server, key string, v wire.Value, id uint64, e dedupEntry) func([]byte) []byte {
	return func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 6)
		b = msgpack.AppendUint(b, 0) // the sender's clock: none
		b = msgpack.AppendUint(b, 0)
		b = msgpack.AppendRaw(b, dbkey(key))
		b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
		b = wire.AppendDBValue(b, &v)
		b = msgpack.AppendUint(b, s.whs.Load().Clock())
		return appendDedup(b, id, &e)
	}
}

// arithReply decodes [status, value, clocktime, created, old_exptime].
func arithReply(t *testing.T, res []byte) (status, value, clock uint64, created bool) {
	t.Helper()
	_, p, err := msgpack.ReadArrayHeader(res)
	if err == nil {
		status, p, err = msgpack.ReadUint(p)
	}
	if err == nil {
		value, p, err = msgpack.ReadUint(p)
	}
	if err == nil {
		clock, p, err = msgpack.ReadUint(p)
	}
	if err == nil {
		created, _, err = msgpack.ReadBool(p)
	}
	if err != nil {
		t.Fatalf("arith reply % x: %v", res, err)
	}
	return
}

// Ensure that a write sent again with its request id is answered with
// its first outcome and not applied twice: on the coordinator that
// applied it, and on a server that only saw it replicated (the next
// coordinator after the first one died).
func TestDedupWrites(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	st, v1, c1, created := arithReply(t, call(t, cl, wire.SrvArith, arithWithID("n", 5, 42)))
	if st != wire.StatusOK || v1 != 100 || !created {
		t.Fatalf("first incr (creates): status %d value %d created %v", st, v1, created)
	}
	st, v2, _, _ := arithReply(t, call(t, cl, wire.SrvArith, arithWithID("n", 5, 43)))
	if st != wire.StatusOK || v2 != 105 {
		t.Fatalf("second incr: %d %d", st, v2)
	}
	// The first again: its outcome, nothing applied.
	st, v, c, created := arithReply(t, call(t, cl, wire.SrvArith, arithWithID("n", 5, 42)))
	if st != wire.StatusOK || v != 100 || c != c1 || !created {
		t.Fatalf("repeated first incr: status %d value %d clock %x created %v; want 100 at %x, created", st, v, c, created, c1)
	}
	if got, _ := getKey(t, cl, wire.SrvGet, "n"); string(got.Data) != "105" {
		t.Fatalf("n = %q after a repeated incr, want 105", got.Data)
	}
	// The second again, the current version: replicated again, answered.
	if st, v, _, _ := arithReply(t, call(t, cl, wire.SrvArith, arithWithID("n", 5, 43))); st != wire.StatusOK || v != 105 {
		t.Fatalf("repeated second incr: %d %d", st, v)
	}

	// Appends too.
	storeKey(t, cl, wire.OpSet, "log", "a")
	call(t, cl, wire.SrvStore, appendWithID("log", "b", 77))
	call(t, cl, wire.SrvStore, appendWithID("log", "b", 77))
	if got, _ := getKey(t, cl, wire.SrvGet, "log"); string(got.Data) != "ab" {
		t.Fatalf("log = %q after an append sent twice, want ab", got.Data)
	}

	// A replica that got the write replicated answers its retry.
	ct := s.clk.Now()
	call(t, cl, wire.SrvReplicateSet, replicateWithID(s, "m", wire.Value{Clock: ct, Data: []byte("8")}, 99, dedupEntry{num: 8}))
	st, v, c, created = arithReply(t, call(t, cl, wire.SrvArith, arithWithID("m", 1, 99)))
	if st != wire.StatusOK || v != 8 || c != ct || created {
		t.Fatalf("retry on the replica: status %d value %d clock %x created %v; want 8 at %x", st, v, c, created, ct)
	}
	if got, _ := getKey(t, cl, wire.SrvGet, "m"); string(got.Data) != "8" {
		t.Fatalf("m = %q, want 8 (not applied again)", got.Data)
	}
	// Without an id every incr applies.
	call(t, cl, wire.SrvArith, arithWithID("m", 1, 0))
	call(t, cl, wire.SrvArith, arithWithID("m", 1, 0))
	if got, _ := getKey(t, cl, wire.SrvGet, "m"); string(got.Data) != "10" {
		t.Fatalf("m = %q, want 10", got.Data)
	}
}

// Ensure that a lease win sent again with its request id gets its win,
// not "exists" (the token it took is out by then).
func TestDedupLeaseWin(t *testing.T) {
	_, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	storeKey(t, cl, wire.OpSet, "k", "v")
	v, _ := getKey(t, cl, wire.SrvGet, "k")
	cas := v.Clock
	win := func(id uint64) (status, clock uint64) {
		res := call(t, cl, wire.SrvLease, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 6)
			b = msgpack.AppendRaw(b, dbkey("k"))
			b = msgpack.AppendUint(b, wire.LeaseWin)
			b = msgpack.AppendUint(b, cas)
			b = msgpack.AppendBool(b, false)
			b = msgpack.AppendUint(b, 0)
			return msgpack.AppendUint(b, id)
		})
		_, p, err := msgpack.ReadArrayHeader(res)
		if err == nil {
			status, p, err = msgpack.ReadUint(p)
		}
		if err == nil {
			clock, _, err = msgpack.ReadUint(p)
		}
		if err != nil {
			t.Fatalf("lease reply % x: %v", res, err)
		}
		return status, clock
	}
	st, c1 := win(5)
	if st != wire.StatusOK {
		t.Fatalf("first win: status %d", st)
	}
	if st, c2 := win(5); st != wire.StatusOK || c2 != c1 {
		t.Fatalf("the win sent again: status %d clock %x; want OK at %x", st, c2, c1)
	}
	if st, _ := win(6); st != wire.StatusExists {
		t.Fatalf("another client's win: status %d, want exists", st)
	}
}

// Ensure that a replica that keeps a newer version than a replicated
// write (a leftover the coordinator re-stamps above) does not remember
// the write's id: it has not stored that write.
func TestDedupNotRememberedUnderNewer(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	replicate := func(ct uint64, val string, id uint64) []byte {
		return call(t, cl, wire.SrvReplicateSet, replicateWithID(s, "z", wire.Value{Clock: ct, Data: []byte(val)}, id, dedupEntry{num: 1}))
	}
	now := s.clk.Now()
	ahead := now + 30<<32
	replicate(ahead, "5", 0)
	if res := replicate(now, "1", 321); msgpack.IsNil(res) {
		t.Fatalf("older write: % x", res)
	}
	if _, ok := s.dedup.get(321); ok {
		t.Fatal("the id of a write kept out by a newer version is remembered")
	}
	replicate(ahead+1, "1", 321)
	if e, ok := s.dedup.get(321); !ok || e.clock != ahead+1 {
		t.Fatalf("the id of the stored (re-stamped) write: %+v %v", e, ok)
	}
}

// Ensure that a rebalance copy carries the request id of the write that
// made the version it copies, and that the new owner answers a retry of
// that write from it instead of applying it again (an append in flight
// while the ring changed was applied twice before: its old coordinator
// was fenced after applying it, and the gateway's retry reached a new
// owner that had the value from the copy but not the id).
func TestDedupTravelsWithRebalance(t *testing.T) {
	// The table finds a write by the version it made, also re-stamped,
	// and forgets it with the write.
	d := newDedupTable()
	d.keep = 0 // a ring of fixed size
	d.put(5, dedupEntry{h: 1, clock: 10})
	d.put(5, dedupEntry{h: 1, clock: 11}) // re-stamped
	if _, _, ok := d.byVersionOf(1, 10); ok {
		t.Fatal("the version before the re-stamp is still indexed")
	}
	if id, e, ok := d.byVersionOf(1, 11); !ok || id != 5 || e.clock != 11 {
		t.Fatalf("byVersionOf(1, 11) = %d %+v %v", id, e, ok)
	}
	for id := uint64(6); id < 6+dedupSize; id++ {
		d.put(id, dedupEntry{h: 2, clock: id})
	}
	if _, _, ok := d.byVersionOf(1, 11); ok {
		t.Fatal("an evicted write is still indexed")
	}

	// The sender: a version a remembered write made goes with its id.
	src, _ := startAlone(t, filepath.Join(t.TempDir(), "src"))
	h := binary.BigEndian.Uint64(dbkey("log"))
	src.dedup.put(88, dedupEntry{h: h, clock: 1234})
	b := &batcher{s: src}
	b.add(&store.Record{Key: dbkey("log"), Value: []byte("ab"), Clock: 1234})
	b.add(&store.Record{Key: dbkey("other"), Value: []byte("x"), Clock: 1234})
	p := b.buf
	for i, want := range []uint32{3, 2} {
		n, rest, err := msgpack.ReadArrayHeader(p)
		if err != nil || n != want {
			t.Fatalf("pair %d has %d elements (%v), want %d", i, n, err, want)
		}
		p = rest
		for j := uint32(0); j < n; j++ {
			if j == 2 {
				if id, _, err := readDedup(p); err != nil || id != 88 {
					t.Fatalf("pair %d's request id: %d %v", i, id, err)
				}
			}
			if p, err = msgpack.Skip(p); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The receiver remembers it, and answers the append's retry.
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	ct := s.clk.Now()
	call(t, cl, wire.SrvReplicateBatch, func(p []byte) []byte {
		p = msgpack.AppendArrayHeader(p, 2)
		p = msgpack.AppendUint(p, ct)
		p = msgpack.AppendArrayHeader(p, 1)
		p = msgpack.AppendArrayHeader(p, 3)
		p = msgpack.AppendRaw(p, dbkey("log"))
		v := wire.Value{Clock: ct, Data: []byte("ab")}
		p = msgpack.AppendRawHeader(p, uint32(wire.DBValueLen(&v)))
		p = wire.AppendDBValue(p, &v)
		return appendDedup(p, 88, &dedupEntry{})
	})
	call(t, cl, wire.SrvStore, appendWithID("log", "b", 88))
	if got, _ := getKey(t, cl, wire.SrvGet, "log"); string(got.Data) != "ab" {
		t.Fatalf("log = %q after the retry on the new owner, want ab (not appended twice)", got.Data)
	}
}

// Ensure that a delete sent again with its request id gets its first
// outcome (deleted), on the coordinator and on a replica that got the
// tombstone replicated, while a delete that found no key leaves no id
// behind: its retry finds no key either, and says so.
func TestDedupDelete(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	remove := func(key string, id uint64) uint64 {
		t.Helper()
		res := call(t, cl, wire.SrvRemove, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 3)
			b = msgpack.AppendRaw(b, dbkey(key))
			b = msgpack.AppendUint(b, 0)
			return msgpack.AppendUint(b, id)
		})
		_, p, err := msgpack.ReadArrayHeader(res)
		if err != nil {
			t.Fatalf("remove reply %x: %v", res, err)
		}
		st, _, err := msgpack.ReadUint(p)
		if err != nil {
			t.Fatalf("remove reply %x: %v", res, err)
		}
		return st
	}
	storeKey(t, cl, wire.OpSet, "d", "x")
	if st := remove("d", 51); st != wire.StatusOK {
		t.Fatalf("first delete: status %d", st)
	}
	if st := remove("d", 51); st != wire.StatusOK {
		t.Fatalf("the same delete again: status %d, want its first outcome", st)
	}
	if st := remove("d", 52); st != wire.StatusNotFound {
		t.Fatalf("another delete: status %d, want not found", st)
	}
	if st := remove("none", 53); st != wire.StatusNotFound {
		t.Fatalf("delete of no key: status %d", st)
	}
	if st := remove("none", 53); st != wire.StatusNotFound {
		t.Fatalf("its retry: status %d, want not found", st)
	}
	// A replica that got the tombstone with the id answers the retry.
	ct := s.clk.Now()
	call(t, cl, wire.SrvReplicateSet, replicateWithID(s, "r", wire.Value{Clock: ct, Tombstone: true}, 54, dedupEntry{}))
	if st := remove("r", 54); st != wire.StatusOK {
		t.Fatalf("retry on the replica: status %d, want deleted", st)
	}
}

// Ensure that a coordinator catching up on a key during a rebalance gets
// the request id of the write that made the version it fetches, and
// answers that write's retry instead of applying it again (chaos
// scenarios saw a retried delete answered NOT_FOUND by a server that had
// just been attached again and caught up on the tombstone, id-less).
func TestDedupTravelsWithCatchUp(t *testing.T) {
	src, scl := startAlone(t, filepath.Join(t.TempDir(), "src"))
	storeKey(t, scl, wire.OpSet, "log", "a")
	call(t, scl, wire.SrvStore, appendWithID("log", "b", 61))

	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	srcAddr, err := ring.ParseAddr(src.Addr().String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	r := ring.New([]ring.Node{{Addr: srcAddr, Active: true}}, s.clk.Now())
	if err := s.catchUp(dbkey("log"), binary.BigEndian.Uint64(dbkey("log")), r); err != nil {
		t.Fatal(err)
	}
	if got, _ := getKey(t, cl, wire.SrvGetRaw, "log"); string(got.Data) != "ab" {
		t.Fatalf("log = %q after the catch-up, want ab", got.Data)
	}
	call(t, cl, wire.SrvStore, appendWithID("log", "b", 61))
	if got, _ := getKey(t, cl, wire.SrvGetRaw, "log"); string(got.Data) != "ab" {
		t.Fatalf("log = %q after the append's retry, want ab (not appended twice)", got.Data)
	}
	// A key whose version no remembered write made comes without an id;
	// an older server's bare DBValue reply reads the same.
	raw, id, _, _, _, err := readRawWithID(msgpack.AppendRaw(nil, []byte("\x00\x00\x00\x00\x00\x00\x00\x07")))
	if err != nil || id != 0 || len(raw) != 8 {
		t.Fatalf("bare reply: %x %d %v", raw, id, err)
	}
}

// fillDedup puts ids from, from+1, … to (inclusive) into d at time now.
func fillDedup(d *dedupTable, clock *int64, now int64, from, to uint64) {
	*clock = now
	for id := from; id <= to; id++ {
		d.put(id, dedupEntry{h: id, clock: id * 10})
	}
}

// checkIDs fails unless d remembers exactly the ids from..to (inclusive)
// among those from lo to hi.
func checkIDs(t *testing.T, d *dedupTable, lo, hi, from, to uint64) {
	t.Helper()
	for id := lo; id <= hi; id++ {
		e, ok := d.get(id)
		if want := id >= from && id <= to; ok != want || ok && e != (dedupEntry{h: id, clock: id * 10}) {
			t.Fatalf("id %d: %+v %v, want remembered %v", id, e, ok, want)
		}
	}
}

// Ensure that the ring doubles, in memory and in its file, instead of
// forgetting an id younger than d.keep; that it keeps forgetting the
// oldest first afterwards, also reopened; that ids older than d.keep are
// forgotten without growing; and that a ring at its largest forgets the
// oldest whatever its age, saying so once.
func TestDedupGrows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.ids")
	var clock int64
	d, _ := openTable(t, path)
	d.keep, d.now = 30, func() int64 { return clock }

	// Ids 1..100 are old by the time the ring wraps: they go without
	// growing it. Id 101 is not: the next put grows it, with the ring's
	// next position (100) in the middle, so that slots move.
	fillDedup(d, &clock, 1000, 1, 100)
	fillDedup(d, &clock, 2000, 101, dedupSize+100)
	if len(d.slots) != dedupSize || d.next != 100 {
		t.Fatalf("%d slots, next %d; want %d, 100", len(d.slots), d.next, dedupSize)
	}
	checkIDs(t, d, 1, dedupSize+100, 101, dedupSize+100)
	fillDedup(d, &clock, 2001, dedupSize+101, dedupSize+101)
	if n, c := d.sizes(); n != dedupSize+1 || c != 2*dedupSize {
		t.Fatalf("after a young id was due: %d ids, room for %d", n, c)
	}
	checkIDs(t, d, 1, dedupSize+101, 101, dedupSize+101)
	if id, _, ok := d.byVersionOf(101, 1010); !ok || id != 101 {
		t.Fatalf("version of id 101 after growing: %d %v", id, ok)
	}
	closeTable(t, d)

	// Reopened: the grown ring, in the same order.
	d, fresh := openTable(t, path)
	d.keep, d.now = 30, func() int64 { return clock }
	if fresh || len(d.slots) != 2*dedupSize || d.len() != dedupSize+1 {
		t.Fatalf("reopened: fresh %v, %d slots, %d ids", fresh, len(d.slots), d.len())
	}
	checkIDs(t, d, 1, dedupSize+101, 101, dedupSize+101)
	// Fill the free half while the ids are young, then one more once
	// they are old: it replaces the oldest, id 101.
	fillDedup(d, &clock, 2002, dedupSize+102, 2*dedupSize+100)
	if len(d.slots) != 2*dedupSize {
		t.Fatalf("%d slots after filling the free half", len(d.slots))
	}
	fillDedup(d, &clock, 3000, 2*dedupSize+101, 2*dedupSize+101)
	if len(d.slots) != 2*dedupSize {
		t.Fatalf("grew for an old id: %d slots", len(d.slots))
	}
	checkIDs(t, d, 100, 2*dedupSize+101, 102, 2*dedupSize+101)

	// At its largest the ring forgets young ids, and says so once.
	var warned []string
	d.maxSlots = 2 * dedupSize
	d.warnf = func(format string, args ...any) { warned = append(warned, format) }
	fillDedup(d, &clock, 3001, 2*dedupSize+102, 4*dedupSize+200)
	if len(d.slots) != 2*dedupSize || len(warned) != 1 {
		t.Fatalf("at its largest: %d slots, %d warnings", len(d.slots), len(warned))
	}
	checkIDs(t, d, 2*dedupSize+150, 4*dedupSize+200, 2*dedupSize+201, 4*dedupSize+200)
}

// Ensure that a process killed while the ring grows leaves a file that
// opens with every id it remembered: killed once the slots are copied
// (the header still says the old size) or once the header says the new
// size (the moved slots are there twice).
func TestDedupGrowKilled(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db.ids")
	var clock int64
	d, _ := openTable(t, path)
	d.keep, d.now = 30, func() int64 { return clock }
	fillDedup(d, &clock, 1000, 1, 100)
	fillDedup(d, &clock, 2000, 101, dedupSize+100)

	snaps := map[int][]byte{}
	idsGrowHook = func(step int) {
		b, err := os.ReadFile(path) // the shared mapping's pages
		if err != nil {
			t.Error(err)
		}
		snaps[step] = b
	}
	t.Cleanup(func() { idsGrowHook = nil })
	fillDedup(d, &clock, 2001, dedupSize+101, dedupSize+101)
	idsGrowHook = nil
	if len(snaps) != 2 {
		t.Fatalf("grow stopped at %d points, want 2", len(snaps))
	}
	for step, slots := range map[int]int{1: dedupSize, 2: 2 * dedupSize} {
		p := filepath.Join(dir, "killed.ids")
		if err := os.WriteFile(p, snaps[step], 0o644); err != nil {
			t.Fatal(err)
		}
		d, fresh := openTable(t, p)
		if fresh || len(d.slots) != slots || d.len() != dedupSize {
			t.Fatalf("killed at step %d: fresh %v, %d slots, %d ids; want %d slots, %d ids",
				step, fresh, len(d.slots), d.len(), slots, dedupSize)
		}
		checkIDs(t, d, 1, dedupSize+101, 101, dedupSize+100)
		// The oldest is still forgotten first.
		d.put(1<<40, dedupEntry{h: 1})
		if step == 1 {
			checkIDs(t, d, 100, dedupSize+101, 102, dedupSize+100)
		} else {
			checkIDs(t, d, 100, dedupSize+101, 101, dedupSize+100) // the free half takes it
		}
		closeTable(t, d)
	}
}

// Ensure that olderIDs finds the earlier remembered writes of a key,
// newest first and only those older than the version asked about, also
// once the ring has moved slots by growing, after a reopen from the file,
// and not once their slots were reused.
func TestDedupOlderIDs(t *testing.T) {
	ids := func(d *dedupTable, h, clock uint64) []uint64 {
		var out []uint64
		for _, k := range d.olderIDs(h, clock, nil) {
			out = append(out, k.id)
		}
		return out
	}
	want := func(what string, got []uint64, want ...uint64) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	d := newDedupTable()
	for i := uint64(1); i <= 100; i++ { // key 7 every tenth write
		h := 100 + i
		if i%10 == 0 {
			h = 7
		}
		d.put(i, dedupEntry{h: h, clock: i * 10})
	}
	want("key 7 before the version of id 100", ids(d, 7, 1000), 90, 80, 70, 60, 50, 40, 30, 20, 10)
	want("key 7 before the version of id 55", ids(d, 7, 550), 50, 40, 30, 20, 10)
	want("a key with one write", ids(d, 101, 10))
	want("no such key", ids(d, 8, 1<<40))
	d.put(40, dedupEntry{h: 7, clock: 2000}) // re-stamped: still in the chain
	want("key 7 after a re-stamp", ids(d, 7, 1<<40), 100, 90, 80, 70, 60, 50, 40, 30, 20, 10)

	// Growing moves the slots from next on (here 100); the chains follow,
	// through moved and unmoved slots, and are rebuilt from the file.
	path := filepath.Join(t.TempDir(), "db.ids")
	var clock int64
	d, _ = openTable(t, path)
	d.keep, d.now = 30, func() int64 { return clock }
	key7 := func(i uint64) bool { return i%2000 == 0 || i == dedupSize+50 }
	var wantIDs []uint64
	clock = 1000
	for i := uint64(1); i <= dedupSize+100; i++ {
		if i == 101 {
			clock = 2000 // the ids from here on are young when the ring wraps
		}
		h := 100_000 + i
		if key7(i) {
			h = 7
			wantIDs = append([]uint64{i}, wantIDs...)
		}
		d.put(i, dedupEntry{h: h, clock: i})
	}
	clock = 2001
	d.put(dedupSize+101, dedupEntry{h: 1, clock: 1})
	if len(d.slots) != 2*dedupSize || d.next != 101 {
		t.Fatalf("%d slots, next %d; want the ring doubled at 100", len(d.slots), d.next)
	}
	want("key 7 after growing", ids(d, 7, 1<<40), wantIDs...)
	closeTable(t, d)
	d, _ = openTable(t, path)
	want("key 7 reopened", ids(d, 7, 1<<40), wantIDs...)
	// Slots reused by other keys end the chain.
	d.keep = 0
	for id := uint64(1 << 30); id < 1<<30+2*dedupSize; id++ {
		d.put(id, dedupEntry{h: 9, clock: id})
	}
	want("key 7 forgotten", ids(d, 7, 1<<40))
	closeTable(t, d)
}

// Ensure that a rebalance copy and a catch-up carry the ids of the earlier
// writes of the key that the copied version holds, and that the new owner
// answers their retries instead of applying them again (hunt 28a: appends
// retried during the replace after an attach were applied twice, with
// other appends between the copies, because only the id of the write that
// made the version traveled).
func TestDedupEarlierWritesTravel(t *testing.T) {
	src, scl := startAlone(t, filepath.Join(t.TempDir(), "src"))
	storeKey(t, scl, wire.OpSet, "log", "a")
	call(t, scl, wire.SrvStore, appendWithID("log", "b", 71))
	call(t, scl, wire.SrvStore, appendWithID("log", "c", 72))
	storeKey(t, scl, wire.OpSet, "set", "x")
	call(t, scl, wire.SrvStore, appendWithID("set", "y", 73))
	storeKey(t, scl, wire.OpSet, "set", "z") // the version no remembered write made
	srcAddr, err := ring.ParseAddr(src.Addr().String(), 0)
	if err != nil {
		t.Fatal(err)
	}

	// The rebalance copy.
	b := &batcher{s: src}
	for _, k := range []string{"log", "set"} {
		rec, _, err := src.db.Get(dbkey(k), nil)
		if err != nil {
			t.Fatal(err)
		}
		b.add(&rec)
	}
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "copy"))
	call(t, cl, wire.SrvReplicateBatch, func(p []byte) []byte {
		p = msgpack.AppendArrayHeader(p, 2)
		p = msgpack.AppendUint(p, s.clk.Now())
		p = msgpack.AppendArrayHeader(p, uint32(b.count))
		return append(p, b.buf...)
	})
	// The catch-up.
	c, ccl := startAlone(t, filepath.Join(t.TempDir(), "catchup"))
	r := ring.New([]ring.Node{{Addr: srcAddr, Active: true}}, c.clk.Now())
	for _, k := range []string{"log", "set"} {
		if err := c.catchUp(dbkey(k), binary.BigEndian.Uint64(dbkey(k)), r); err != nil {
			t.Fatal(err)
		}
	}

	for name, cl := range map[string]*rpc.Client{"rebalance copy": cl, "catch-up": ccl} {
		call(t, cl, wire.SrvStore, appendWithID("log", "b", 71))
		call(t, cl, wire.SrvStore, appendWithID("log", "c", 72))
		if got, _ := getKey(t, cl, wire.SrvGet, "log"); string(got.Data) != "abc" {
			t.Errorf("%s: log = %q after the appends' retries, want abc", name, got.Data)
		}
		call(t, cl, wire.SrvStore, appendWithID("set", "y", 73))
		if got, _ := getKey(t, cl, wire.SrvGet, "set"); string(got.Data) != "z" {
			t.Errorf("%s: set = %q after the retry of an append a set replaced, want z", name, got.Data)
		}
	}
}

// failReply records the outcome of a write decided in a test.
type failReply struct {
	err error
	st  int
}

func (f *failReply) fail(err error) { f.err = err }
func (f *failReply) status(_ *rpc.Batch, _ *writeOp, status int, _ uint64, _ func([]byte) []byte) {
	f.st = status
}

// Ensure that a catch-up read is a barrier on the server it reads from:
// that server adopts the newer write space the reader sends, and a write
// it was about to decide as the key's former coordinator (its coordinator
// check passed under the old space) fails as obsolete instead of being
// decided on and acknowledged beside the new coordinator (hunt 28c: an
// acknowledged prepend lost across an attach).
func TestCatchUpIsABarrier(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	storeKey(t, cl, wire.OpSet, "k", "a")
	old := s.whs.Load()
	// A newer space in which another server coordinates "k".
	var other ring.Addr
	var newer *ring.HashSpace
	for port := 1; ; port++ {
		other = ring.AddrFrom4([4]byte{127, 0, 0, 1}, uint16(port))
		newer = ring.New([]ring.Node{{Addr: testSelf, Active: true}, {Addr: other, Active: true}}, old.Clock()+1)
		if c, _ := newer.Owners(binary.BigEndian.Uint64(dbkey("k"))).Coordinator(); c.Addr == other {
			break
		}
	}
	res := call(t, cl, wire.SrvGetRaw, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = msgpack.AppendRaw(b, dbkey("k"))
		b = msgpack.AppendBool(b, true)
		return newer.AppendSeed(b)
	})
	if raw, _, _, _, _, err := readRawWithID(res); err != nil || len(raw) < 8 {
		t.Fatalf("GetRaw answered %x, %v", res, err)
	}
	if s.whs.Load().Clock() != newer.Clock() {
		t.Fatalf("whs clock %x after the catch-up read, want the reader's %x", s.whs.Load().Clock(), newer.Clock())
	}
	op := &writeOp{method: wire.SrvStore, mode: wire.OpAppend, dbkey: dbkey("k"), val: wire.Value{Data: []byte("b")}, reqID: 90}
	rep := &failReply{st: -1}
	s.decideAndReplicate(rep, op, binary.BigEndian.Uint64(dbkey("k")), old, s.rhs.Load(), nil)
	if !isObsolete(rep.err) || rep.st != -1 {
		t.Fatalf("write decided under the old space after the barrier: err %v, status %d; want obsolete", rep.err, rep.st)
	}
	if got, _ := getKey(t, cl, wire.SrvGetRaw, "k"); string(got.Data) != "a" {
		t.Fatalf("k = %q, want a (nothing decided)", got.Data)
	}
}

// Ensure that a replica that gets a coordinator's versions of a key out of
// order (replications leave from different read goroutines' batches)
// still answers the retry of the write whose version it dropped as older:
// the newer version's replication names the key's recent earlier writes
// (recentIDs). Hunt 28c: an acknowledged append was applied twice on the
// replica that took over after its coordinator was killed.
func TestDedupReplicationsOutOfOrder(t *testing.T) {
	c, ccl := startAlone(t, filepath.Join(t.TempDir(), "coord"))
	storeKey(t, ccl, wire.OpSet, "log", "a")
	call(t, ccl, wire.SrvStore, appendWithID("log", "b", 81))
	vP, _, err := c.db.Get(dbkey("log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, ccl, wire.SrvStore, appendWithID("log", "c", 82))
	vQ, _, err := c.db.Get(dbkey("log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	eP, _ := c.dedup.get(81)
	eQ, _ := c.dedup.get(82)

	r, rcl := startAlone(t, filepath.Join(t.TempDir(), "replica"))
	replicate := func(rec *store.Record, tail []byte) []byte {
		return call(t, rcl, wire.SrvReplicateSet, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, uint32(5+countElems(tail)))
			b = msgpack.AppendUint(b, 0)
			b = msgpack.AppendUint(b, 0)
			payload, _ := encodeRecord(rec)
			b = append(b, payload...)
			b = msgpack.AppendUint(b, r.whs.Load().Clock())
			return append(b, tail...)
		})
	}
	replicate(&vQ, c.replicationTail(82, &eQ)) // the newer one first
	if res := replicate(&vP, c.replicationTail(81, &eP)); msgpack.IsNil(res) || res[0] == 0xc3 || res[0] == 0xc2 {
		t.Fatalf("older version's replication answered %x, want the newer clock", res)
	}
	call(t, rcl, wire.SrvStore, appendWithID("log", "b", 81)) // the gateway's retry
	if got, _ := getKey(t, rcl, wire.SrvGet, "log"); string(got.Data) != "abc" {
		t.Fatalf("log = %q on the replica after the first append's retry, want abc", got.Data)
	}
	if tail := c.replicationTail(0, &dedupEntry{h: eQ.h, clock: vQ.Clock + 1}); countElems(tail) != 3 || !msgpack.IsNil(tail) {
		t.Fatalf("a later version without an id of its own carries %d elements %x, want nil and the two appends", countElems(tail), tail)
	}
}
