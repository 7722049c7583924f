package server

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"kumofs/kumo/wire"
	"kumofs/store"
)

// openTable returns a dedup table attached to the request-id file at
// path and whether the file was fresh.
func openTable(t *testing.T, path string) (*dedupTable, bool) {
	t.Helper()
	f, fresh, err := openDedupFile(path, dedupSize, dedupMaxSize, numStripes)
	if err != nil {
		t.Fatal(err)
	}
	d := newDedupTable()
	d.keep = 0 // a ring of fixed size unless a test says otherwise
	d.attach(f)
	t.Cleanup(func() {
		if f := d.detach(); f != nil {
			f.close()
		}
	})
	return d, fresh
}

// closeTable detaches and closes d's file.
func closeTable(t *testing.T, d *dedupTable) {
	t.Helper()
	if err := d.detach().close(); err != nil {
		t.Fatal(err)
	}
}

// Ensure that the request-id file gives a reopened table every remembered
// write with its outcome (updates included), its version index and its
// ring position, so that the oldest is still forgotten first; that a slot
// torn by a kill is ignored; and that a file of another layout is started
// afresh.
func TestDedupFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.ids")
	d, fresh := openTable(t, path)
	if !fresh || d.len() != 0 {
		t.Fatalf("new file: fresh %v, %d ids", fresh, d.len())
	}
	// Wrap the ring once so that the oldest slot is not slot 0.
	const extra = 100
	for id := uint64(1); id <= dedupSize+extra; id++ {
		d.put(id, dedupEntry{h: id, clock: id * 10, num: id + 1, created: id%2 == 0, oldExp: uint32(id)})
	}
	d.put(dedupSize+5, dedupEntry{h: 7, clock: 99, num: 3}) // re-stamped: updated in place
	closeTable(t, d)

	d, fresh = openTable(t, path)
	if fresh || d.len() != dedupSize {
		t.Fatalf("reopened: fresh %v, %d ids; want %d", fresh, d.len(), dedupSize)
	}
	if _, ok := d.get(extra); ok {
		t.Fatalf("id %d survived a full turn of the ring", extra)
	}
	for _, id := range []uint64{extra + 1, dedupSize, dedupSize + extra} {
		want := dedupEntry{h: id, clock: id * 10, num: id + 1, created: id%2 == 0, oldExp: uint32(id)}
		if e, ok := d.get(id); !ok || e != want {
			t.Fatalf("id %d: %+v %v; want %+v", id, e, ok, want)
		}
		if got, e, ok := d.byVersionOf(id, id*10); !ok || got != id || e != want {
			t.Fatalf("version of id %d: %d %+v %v", id, got, e, ok)
		}
	}
	if e, ok := d.get(dedupSize + 5); !ok || e != (dedupEntry{h: 7, clock: 99, num: 3}) {
		t.Fatalf("updated id: %+v %v", e, ok)
	}
	if _, _, ok := d.byVersionOf(dedupSize+5, (dedupSize+5)*10); ok {
		t.Fatal("the version an updated id no longer names is still indexed")
	}
	// The next put replaces the oldest (extra+1), not anything newer.
	d.put(1<<40, dedupEntry{h: 1})
	if _, ok := d.get(extra + 1); ok {
		t.Fatalf("id %d, the oldest, kept after a put", extra+1)
	}
	if _, ok := d.get(extra + 2); !ok {
		t.Fatalf("id %d, the second oldest, forgotten", extra+2)
	}
	slot := d.m[1<<40]
	closeTable(t, d)

	// A slot torn by a kill (a byte of it not written) is ignored.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[idsHeader+numStripes*idsPendingSize+int(slot)*idsSlotSize+20] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ = openTable(t, path)
	if _, ok := d.get(1 << 40); ok {
		t.Fatal("a torn slot was read back")
	}
	if d.len() != dedupSize-1 {
		t.Fatalf("%d ids after one torn slot, want %d", d.len(), dedupSize-1)
	}
	closeTable(t, d)

	// Another layout: started afresh.
	b[8] = 9 // version
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if d, fresh = openTable(t, path); !fresh || d.len() != 0 {
		t.Fatalf("file of version 9: fresh %v, %d ids", fresh, d.len())
	}
	closeTable(t, d)
	if err := os.WriteFile(path, b[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	if d, fresh = openTable(t, path); !fresh || d.len() != 0 {
		t.Fatalf("short file: fresh %v, %d ids", fresh, d.len())
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != idsHeader+dedupSize*idsSlotSize+numStripes*idsPendingSize {
		t.Fatalf("file restarted at %v bytes (%v)", fi.Size(), err)
	}
}

// Ensure that a server restarted on its store answers a write sent again
// with its first outcome (the request-id file), for a write it
// coordinated, one it got replicated, and one a newer write followed.
func TestDedupAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, cl := startAlone(t, path)
	_, _, c42, _ := arithReply(t, call(t, cl, wire.SrvArith, arithWithID("n", 5, 42)))
	_, _, c43, _ := arithReply(t, call(t, cl, wire.SrvArith, arithWithID("n", 5, 43)))
	storeKey(t, cl, wire.OpSet, "log", "a")
	call(t, cl, wire.SrvStore, appendWithID("log", "b", 44))
	ct := s.clk.Now()
	call(t, cl, wire.SrvReplicateSet, replicateWithID(s, "m", wire.Value{Clock: ct, Data: []byte("8")}, 99, dedupEntry{num: 8}))
	cl.Close()
	s.Close()

	s, cl = startAlone(t, path)
	value := func(key, want string) {
		t.Helper()
		if got, _ := getKey(t, cl, wire.SrvGet, key); string(got.Data) != want {
			t.Fatalf("%s = %q, want %q", key, got.Data, want)
		}
	}
	for _, c := range []struct {
		key          string
		id, v, clock uint64
		created      bool
	}{{"n", 42, 100, c42, true}, {"n", 43, 105, c43, false}, {"m", 99, 8, ct, false}} {
		st, v, clock, created := arithReply(t, call(t, cl, wire.SrvArith, arithWithID(c.key, 5, c.id)))
		if st != wire.StatusOK || v != c.v || clock != c.clock || created != c.created {
			t.Fatalf("incr %d again after a restart: status %d value %d clock %x created %v; want %d at %x, created %v",
				c.id, st, v, clock, created, c.v, c.clock, c.created)
		}
	}
	value("n", "105")
	value("m", "8")
	call(t, cl, wire.SrvStore, appendWithID("log", "b", 44))
	value("log", "ab")
	if _, v, _, _ := arithReply(t, call(t, cl, wire.SrvArith, arithWithID("n", 5, 45))); v != 110 {
		t.Fatalf("a new incr after the restart: %d, want 110", v)
	}
}

// Ensure that a write stored in the instant before a kill, its id noted
// as pending but not yet in the table, is remembered after the restart,
// and that a pending write that was never stored is not.
func TestDedupPendingAfterKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, cl := startAlone(t, path)
	storeKey(t, cl, wire.OpSet, "n", "10")
	storeKey(t, cl, wire.OpSet, "m", "10")
	// What decideAndReplicate does up to the kill: the incr of n by 5
	// (id 7) noted and stored; that of m (id 8) noted only.
	cur, _, err := s.db.Get(dbkey("n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	hn, hm := binary.BigEndian.Uint64(dbkey("n")), binary.BigEndian.Uint64(dbkey("m"))
	en := dedupEntry{h: hn, clock: s.clk.Now(), num: 15}
	em := dedupEntry{h: hm, clock: s.clk.Now(), num: 15}
	s.dedup.begin(int(hn%numStripes), 7, &en, dbkey("n"))
	s.dedup.begin(int(hm%numStripes), 8, &em, dbkey("m"))
	rec := store.Record{Key: dbkey("n"), Value: []byte("15"), Clock: en.clock}
	if ok, err := s.db.Update(&rec, newer(rec.Clock)); err != nil || !ok || cur.Clock >= en.clock {
		t.Fatalf("storing the incr: %v %v", ok, err)
	}
	cl.Close()
	s.Close()

	s, cl = startAlone(t, path)
	if e, ok := s.dedup.get(7); !ok || e != en {
		t.Fatalf("the stored pending write after the restart: %+v %v; want %+v", e, ok, en)
	}
	if _, ok := s.dedup.get(8); ok {
		t.Fatal("a pending write never stored is remembered after the restart")
	}
	if st, v, c, _ := arithReply(t, call(t, cl, wire.SrvArith, arithWithID("n", 5, 7))); st != wire.StatusOK || v != 15 || c != en.clock {
		t.Fatalf("incr 7 again: status %d value %d clock %x; want 15 at %x", st, v, c, en.clock)
	}
	if _, v, _, _ := arithReply(t, call(t, cl, wire.SrvArith, arithWithID("m", 5, 8))); v != 15 {
		t.Fatalf("incr 8 again: %d; want 15, applied now", v)
	}
	f := s.dedup.file
	for j := range f.pending {
		if _, _, ok := f.readPending(j); ok {
			t.Fatalf("pending slot %d still set after the start", j)
		}
	}
}

// FuzzIDSlot: any 64 bytes either fail decodeIDSlot or re-encode to the
// same bytes.
func FuzzIDSlot(f *testing.F) {
	p := make([]byte, idsSlotSize)
	encodeIDSlot(p, &dedupSlot{id: 42, seq: 7, e: dedupEntry{h: 1, clock: 2, num: 3, created: true, oldExp: 4}})
	f.Add(p)
	f.Add(make([]byte, idsSlotSize))
	f.Fuzz(func(t *testing.T, p []byte) {
		sl, ok := decodeIDSlot(p)
		if !ok {
			return
		}
		again := make([]byte, idsSlotSize)
		encodeIDSlot(again, &sl)
		if !bytes.Equal(again, p[:idsSlotSize]) {
			t.Fatalf("re-encode differs:\n%x\n%x", again, p[:idsSlotSize])
		}
	})
}

// FuzzPendingSlot: any input either fails decodePending or re-encodes
// (writePending) to the same 384 bytes.
func FuzzPendingSlot(f *testing.F) {
	d := &dedupFile{m: make([]byte, idsHeader+idsPendingSize), pending: 1}
	d.writePending(0, 42, &dedupEntry{h: 1, clock: 2, num: 3, created: true, oldExp: 4}, dbkey("counter"))
	f.Add(bytes.Clone(d.pendingSlot(0)))
	f.Add(make([]byte, idsPendingSize))
	f.Fuzz(func(t *testing.T, p []byte) {
		sl, key, ok := decodePending(p)
		if !ok {
			return
		}
		d := &dedupFile{m: make([]byte, idsHeader+idsPendingSize), pending: 1}
		if !d.writePending(0, sl.id, &sl.e, key) {
			t.Fatalf("a decoded key of %d bytes does not fit", len(key))
		}
		if !bytes.Equal(d.pendingSlot(0), p[:idsPendingSize]) {
			t.Fatalf("re-encode differs:\n%x\n%x", d.pendingSlot(0), p[:idsPendingSize])
		}
	})
}

// Ensure that a server whose request-id file cannot be created starts
// anyway and keeps the ids in memory.
func TestDedupFileUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(path+".ids", 0o755); err != nil { // a directory where the file belongs
		t.Fatal(err)
	}
	s, cl := startAlone(t, path)
	if s.dedup.file != nil {
		t.Fatal("the table has a file")
	}
	call(t, cl, wire.SrvArith, arithWithID("n", 5, 42))
	if _, v, _, _ := arithReply(t, call(t, cl, wire.SrvArith, arithWithID("n", 5, 42))); v != 100 {
		t.Fatalf("incr 42 again: %d, want its first outcome 100", v)
	}
}
