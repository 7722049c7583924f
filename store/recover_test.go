package store

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// crash simulates kill -9: the file is released without a checkpoint, so
// the header keeps its OPEN flag and, with heap slots, the slot table on
// disk stays as of the last checkpoint.
func (db *DB) crash() {
	db.closing.Store(true)
	db.writeMu.Lock()
	db.closed = true
	db.writeMu.Unlock()
	close(db.stop)
	<-db.syncDone
	g := db.cur.Swap(nil)
	g.release()
	<-g.done
}

// withSlots runs fn with the slot table on the heap and in the mapping.
func withSlots(t *testing.T, fn func(t *testing.T)) {
	for _, heap := range []bool{true, false} {
		name := "mmap"
		if heap {
			name = "heap"
		}
		t.Run(name, func(t *testing.T) {
			defer func(old bool) { heapSlots = old }(heapSlots)
			heapSlots = heap
			fn(t)
		})
	}
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func val(i int) []byte { return bytes.Repeat(key(i), 1+i%3) }

// Ensure that truncating a crashed file at every byte offset of its last
// records yields, on reopen, the intact prefix and nothing torn.
func TestTornTail(t *testing.T) {
	withSlots(t, func(t *testing.T) {
		dir := fastTempDir(t)
		path := filepath.Join(dir, "base.kch")
		db, err := Open(path, &Options{Sync: SyncNone, Buckets: 256})
		if err != nil {
			t.Fatal(err)
		}
		const head, tail = 20, 3
		for i := 0; i < head; i++ {
			db.Put(&Record{Key: key(i), Value: val(i), Clock: uint64(i)})
		}
		if err := db.Sync(); err != nil {
			t.Fatal(err)
		}
		ends := []int64{int64(db.Stats().LogEnd)}
		var full []int64 // unpadded record ends: a record is whole from there
		for i := head; i < head+tail; i++ {
			full = append(full, ends[len(ends)-1]+recHdrSize+int64(len(key(i))+len(val(i))))
			db.Put(&Record{Key: key(i), Value: val(i), Clock: uint64(i)})
			ends = append(ends, int64(db.Stats().LogEnd))
		}
		db.crash()
		// Drop the preallocated zeros so each copy below is small.
		if err := os.Truncate(path, ends[tail]); err != nil {
			t.Fatal(err)
		}
		step := int64(1)
		if testing.Short() {
			step = 7
		}
		for cut := ends[0]; cut <= ends[tail]; cut += step {
			p := filepath.Join(dir, "cut.kch")
			copyFile(t, path, p)
			if err := os.Truncate(p, cut); err != nil {
				t.Fatal(err)
			}
			db, err := Open(p, &Options{Sync: SyncNone})
			if err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
			whole := 0
			for whole < tail && full[whole] <= cut {
				whole++
			}
			for i := 0; i < head+tail; i++ {
				rec, _, err := db.Get(key(i), nil)
				if i < head+whole {
					if err != nil || !bytes.Equal(rec.Value, val(i)) || rec.Clock != uint64(i) {
						t.Fatalf("cut %d: key %d: %v %q", cut, i, err, rec.Value)
					}
				} else if err != ErrNotFound {
					t.Fatalf("cut %d: torn key %d: %v %q", cut, i, err, rec.Value)
				}
			}
			if got := db.Stats().LogEnd; got != uint64(ends[whole]) {
				t.Fatalf("cut %d: log end %d, want %d", cut, got, ends[whole])
			}
			if db.Len() != head+whole {
				t.Fatalf("cut %d: Len %d", cut, db.Len())
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Stat(p); fi.Size() != ends[whole] {
				t.Fatalf("cut %d: file size %d, want %d", cut, fi.Size(), ends[whole])
			}
		}
	})
}

// Ensure that a slot pointing past the valid log (an OS crash that kept
// a slot write but lost its record) makes recovery rebuild the table.
func TestLostSlotRebuild(t *testing.T) {
	defer func(old bool) { heapSlots = old }(heapSlots)
	heapSlots = false
	path := filepath.Join(fastTempDir(t), "l.kch")
	db, err := Open(path, &Options{Sync: SyncNone, Buckets: 64})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		db.Put(&Record{Key: key(i), Value: val(i)})
	}
	db.Sync()
	db.Put(&Record{Key: key(3), Value: []byte("new")})
	end := int64(db.Stats().LogEnd)
	db.crash()
	// Zero the last record (as if never written back) but keep the slot.
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt(make([]byte, 48), end-48)
	f.Close()
	db, err = Open(path, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := mustGet(t, db, string(key(3))); !bytes.Equal(got.Value, val(3)) {
		t.Fatalf("key 3 = %q, want the checkpointed version", got.Value)
	}
	if db.Len() != 10 {
		t.Fatalf("Len %d", db.Len())
	}
}

func flipBit(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0x10
	f.WriteAt(b, off)
}

// Ensure that a bit flip before the checkpoint is detected by Get, Verify
// and recovery (which refuses, naming repair), and that Repair recovers
// every undamaged record.
func TestBitFlipRepair(t *testing.T) {
	defer func(old bool) { heapSlots = old }(heapSlots)
	heapSlots = false
	path := filepath.Join(fastTempDir(t), "f.kch")
	db, err := Open(path, &Options{Sync: SyncNone, Buckets: 256})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	var victimOff int64
	for i := 0; i < n; i++ {
		if i == 10 {
			victimOff = int64(db.Stats().LogEnd)
		}
		db.Put(&Record{Key: key(i), Value: val(i), Clock: uint64(i)})
	}
	db.Put(&Record{Key: key(1), Value: []byte("v2"), Clock: 100})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	flipBit(t, path, victimOff+recHdrSize+9) // inside key 10's value

	db, err = Open(path, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Get(key(10), nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "kumo-storetool repair") {
		t.Fatalf("Get damaged: %v", err)
	}
	// Crash with a tail whose last record is torn, so recovery must
	// rebuild from the start and meet the damage.
	db.Put(&Record{Key: key(n), Value: val(n)})
	db.Put(&Record{Key: key(n + 1), Value: val(n + 1)})
	end := int64(db.Stats().LogEnd)
	db.crash()
	if err := os.Truncate(path, end-20); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "kumo-storetool repair") {
		t.Fatalf("Open damaged: %v", err)
	}
	rep, err := Verify(path)
	if !errors.Is(err, ErrCorrupt) || len(rep.Bad) != 1 || rep.Bad[0] != victimOff {
		t.Fatalf("Verify: %v %+v (victim at %d)", err, rep, victimOff)
	}
	rrep, err := Repair(path)
	if err != nil {
		t.Fatal(err)
	}
	if rrep.Recovered != n || len(rrep.Skipped) != 2 {
		t.Fatalf("Repair: %+v", rrep)
	}
	db, err = Open(path, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i <= n; i++ {
		rec, _, err := db.Get(key(i), nil)
		switch {
		case i == 10:
			if err != ErrNotFound {
				t.Fatalf("damaged key: %v", err)
			}
		case i == 1:
			if err != nil || string(rec.Value) != "v2" {
				t.Fatalf("key 1: %v %q", err, rec.Value)
			}
		case err != nil || !bytes.Equal(rec.Value, val(i)):
			t.Fatalf("key %d: %v %q", i, err, rec.Value)
		}
	}
	if st := db.Stats(); len(st.Flags) != 2 || st.Flags[1] != "repaired" {
		t.Fatalf("flags %v", st.Flags)
	}
	if _, err := Verify(path); err != ErrLocked {
		t.Fatalf("Verify while open: %v", err)
	}
}

// Ensure that a damaged header copy falls back to the other one, and
// that two damaged copies are refused with ErrBadHeader.
func TestHeaderCopies(t *testing.T) {
	path := filepath.Join(fastTempDir(t), "h.kch")
	db, err := Open(path, &Options{Sync: SyncNone, Buckets: 64})
	if err != nil {
		t.Fatal(err)
	}
	db.Put(&Record{Key: []byte("k"), Value: []byte("v")})
	db.Close()
	f, _ := os.Open(path)
	h, _ := readHeader(f)
	f.Close()
	newest := int64(0)
	if h.seq%2 == 1 {
		newest = headerCopyB
	}
	flipBit(t, path, newest+20)
	if _, err := Inform(path); err != nil {
		t.Fatalf("one copy damaged: %v", err)
	}
	flipBit(t, path, headerCopyB-newest+20)
	if _, err := Open(path, nil); err != ErrBadHeader {
		t.Fatalf("both damaged: %v", err)
	}
	_ = io.EOF
}

// Ensure that a crash in the middle of a full table rebuild (REBUILD set,
// table partly cleared) makes the next open rebuild again.
func TestCrashDuringRebuild(t *testing.T) {
	defer func(old bool) { heapSlots = old }(heapSlots)
	heapSlots = false
	path := filepath.Join(fastTempDir(t), "r.kch")
	db, err := Open(path, &Options{Sync: SyncNone, Buckets: 64})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		db.Put(&Record{Key: key(i), Value: val(i)})
	}
	db.Close()
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	h, _ := readHeader(f)
	h.flags |= flagOpen | flagRebuild
	h.seq++
	f.WriteAt(appendHeader(nil, &h), int64(h.seq%2)*headerCopyB)
	f.WriteAt(make([]byte, 8*32), slotsOffset) // half the table "cleared"
	f.Close()
	db, err = Open(path, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 20; i++ {
		if got := mustGet(t, db, string(key(i))); !bytes.Equal(got.Value, val(i)) {
			t.Fatalf("key %d: %q", i, got.Value)
		}
	}
	if st := db.Stats(); st.Records != 20 || len(st.Flags) != 1 {
		t.Fatalf("stats %+v", st)
	}
}
