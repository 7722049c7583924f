package store

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Ensure that records beyond the mapping are read and written with
// pread/pwrite, including across a crash and a compaction.
func TestBeyondMapping(t *testing.T) {
	defer func(old int64) { mapReserve = old }(mapReserve)
	mapReserve = 64 << 10 // just the header and slots of a small table
	db, path := tempDB(t, &Options{Sync: SyncNone, Buckets: 256})
	for i := 0; i < 100; i++ {
		db.Put(&Record{Key: key(i), Value: val(i), Clock: uint64(i)})
	}
	db.Delete(key(5), nil)
	db.crash()
	db, err := Open(path, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Compact(CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 4) // too small: Get must grow it
	for i := 0; i < 100; i++ {
		rec, b, err := db.Get(key(i), buf)
		if i == 5 {
			if err != ErrNotFound {
				t.Fatalf("removed key: %v", err)
			}
			continue
		}
		if err != nil || !bytes.Equal(rec.Value, val(i)) || !bytes.Equal(rec.Key, key(i)) {
			t.Fatalf("key %d: %v %q", i, err, rec.Value)
		}
		buf = b
	}
}

// Ensure that a compaction interrupted by a crash leaves a valid store
// and that its leftover file is removed at the next Open.
func TestCompactLeftover(t *testing.T) {
	db, path := tempDB(t, nil)
	db.Put(&Record{Key: []byte("k"), Value: []byte("v")})
	db.Close()
	if err := os.WriteFile(path+compactSuffix, []byte("half a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(path + compactSuffix); !os.IsNotExist(err) {
		t.Fatalf("leftover: %v", err)
	}
	if got := mustGet(t, db, "k"); string(got.Value) != "v" {
		t.Fatalf("got %q", got.Value)
	}
}

// Ensure that Compact reclaims dead space, shrinks the file, keeps the
// bucket number, and that Optimize changes it.
func TestCompactReclaims(t *testing.T) {
	db, path := tempDB(t, &Options{Sync: SyncInterval, SyncInterval: time.Millisecond, Buckets: 512})
	defer db.Close()
	for round := 0; round < 5; round++ {
		for i := 0; i < 100; i++ {
			db.Put(&Record{Key: key(i), Value: bytes.Repeat([]byte{'x'}, 500)})
		}
	}
	for i := 0; i < 50; i++ {
		db.Delete(key(i), nil)
	}
	before := db.Stats()
	if before.DeadBytes == 0 || before.DeletedSlots != 50 || before.Records != 50 {
		t.Fatalf("before: %+v", before)
	}
	if err := db.Compact(CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	after := db.Stats()
	if after.DeadBytes != 0 || after.DeletedSlots != 0 || after.Records != 50 || after.Buckets != 512 ||
		after.LogEnd-after.LogStart != after.LiveBytes {
		t.Fatalf("after: %+v", after)
	}
	if err := db.Optimize(0); err != nil {
		t.Fatal(err)
	}
	if st := db.Stats(); st.Buckets != 1024 || st.Records != 50 {
		t.Fatalf("after optimize: %+v", st)
	}
	if st := db.Stats(); st.LogEnd-st.LogStart != before.LiveBytes {
		t.Fatalf("log not shrunk to the live bytes: %+v", st)
	}
	if _, err := Open(path, nil); err != ErrLocked {
		t.Fatalf("swapped file not locked: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "t.kch.compact")); !os.IsNotExist(err) {
		t.Fatal("compact file left behind")
	}
}

// Ensure that ParseSyncPolicy accepts exactly the three names.
func TestParseSyncPolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SyncPolicy
		ok   bool
	}{{"none", SyncNone, true}, {"interval", SyncInterval, true}, {"always", SyncAlways, true}, {"", SyncInterval, true}, {"sometimes", 0, false}} {
		got, err := ParseSyncPolicy(tc.in)
		if (err == nil) != tc.ok || got != tc.want || (tc.ok && got.String() != map[string]string{"": "interval"}[tc.in]+tc.in) {
			t.Errorf("ParseSyncPolicy(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// Ensure that writes are refused with ErrFull when no slot is left, and
// with ErrInvalid for bad sizes.
func TestFullAndInvalid(t *testing.T) {
	db, _ := tempDB(t, &Options{Sync: SyncNone, Buckets: 8})
	defer db.Close()
	for i := 0; i < 8; i++ {
		if err := db.Put(&Record{Key: key(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Put(&Record{Key: key(8)}); err != ErrFull {
		t.Fatalf("9th key: %v", err)
	}
	if err := db.Put(&Record{Key: nil}); err != ErrInvalid {
		t.Fatalf("empty key: %v", err)
	}
	if err := db.Put(&Record{Key: make([]byte, 65536)}); err != ErrInvalid {
		t.Fatalf("long key: %v", err)
	}
}

// Ensure that deleted keys' slots serve new keys even before a checkpoint
// made their removal durable: a full table with removed slots checkpoints
// and retries instead of failing with ErrFull.
func TestRemovedSlotsReusedWhenFull(t *testing.T) {
	db, _ := tempDB(t, &Options{Sync: SyncNone, SyncInterval: time.Hour, Buckets: 8})
	defer db.Close()
	for i := 0; i < 8; i++ {
		if err := db.Put(&Record{Key: key(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Sync(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if ok, err := db.Delete(key(i), nil); !ok || err != nil {
			t.Fatalf("delete %d: %v %v", i, ok, err)
		}
	}
	for i := 8; i < 12; i++ {
		if err := db.Put(&Record{Key: key(i), Value: []byte("new")}); err != nil {
			t.Fatalf("put %d into a removed slot: %v", i, err)
		}
	}
	if err := db.Put(&Record{Key: key(12)}); err != ErrFull {
		t.Fatalf("13th key with every slot live: %v", err)
	}
	for i := 4; i < 12; i++ {
		if _, _, err := db.Get(key(i), nil); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
}

// Ensure that concurrent SyncAlways writers share one fdatasync: the
// first leader is held until every writer has written, then one more
// sync at most covers them all.
func TestGroupCommit(t *testing.T) {
	db, _ := tempDB(t, &Options{Sync: SyncAlways, SyncInterval: time.Hour, Buckets: 256})
	defer db.Close()
	const writers = 8
	release := make(chan struct{})
	first := true
	testHookGroupSync = func() {
		if first {
			first = false
			<-release
		}
	}
	defer func() { testHookGroupSync = nil }()
	done := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func(w int) { done <- db.Put(&Record{Key: key(w), Value: val(w)}) }(w)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.writeMu.Lock()
		n := db.written
		db.writeMu.Unlock()
		if n == writers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes done", n)
		}
		time.Sleep(time.Millisecond) // polling a condition, not synchronizing
	}
	close(release)
	for w := 0; w < writers; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := db.Stats().GroupSyncs; got < 1 || got > 2 {
		t.Fatalf("%d fdatasyncs for %d concurrent writes, want 1 or 2", got, writers)
	}
}

// Ensure that SyncInterval checkpoints by itself after writes.
func TestIntervalCheckpoint(t *testing.T) {
	db, _ := tempDB(t, &Options{Sync: SyncInterval, SyncInterval: 5 * time.Millisecond, Buckets: 256})
	defer db.Close()
	db.Put(&Record{Key: []byte("k"), Value: []byte("v")})
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := db.Stats()
		if st.Checkpoint == st.LogEnd {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
}

// Ensure that log appends fault their pages in ahead of the log end (one
// madvise per populateAhead bytes), never beyond the allocated file, and
// that the records written there read back after a crash.
func TestPopulateAhead(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("MADV_POPULATE_WRITE is Linux only")
	}
	db, path := tempDB(t, &Options{Sync: SyncNone, Buckets: 256})
	big := bytes.Repeat([]byte("v"), 3000)
	for i := 0; i < 200; i++ {
		if err := db.Put(&Record{Key: key(i), Value: big, Clock: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		g := db.cur.Load()
		if g.popEnd == -1 {
			t.Skip("kernel refuses MADV_POPULATE_WRITE")
		}
		if end := g.logEnd.Load(); g.popEnd < end || g.popEnd > g.allocEnd || g.popEnd%int64(os.Getpagesize()) != 0 {
			t.Fatalf("after %d puts: popEnd %d, logEnd %d, allocEnd %d", i+1, g.popEnd, end, g.allocEnd)
		}
	}
	db.crash()
	db, err := Open(path, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 200; i++ {
		r, _, err := db.Get(key(i), nil)
		if err != nil || !bytes.Equal(r.Value, big) || r.Clock != uint64(i+1) {
			t.Fatalf("key %d: %v, clock %d, %d bytes", i, err, r.Clock, len(r.Value))
		}
	}
}

// Ensure that BackupFunc passes every live record through xf: a changed
// record is copied as changed (a value may become a tombstone), a refused
// one is left out, and the store itself is untouched.
func TestBackupFunc(t *testing.T) {
	db, path := tempDB(t, &Options{Sync: SyncNone, Buckets: 256})
	defer db.Close()
	for i := 0; i < 30; i++ {
		if err := db.Put(&Record{Key: key(i), Value: val(i), Clock: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	dst := path + "-bk"
	err := db.BackupFunc(dst, func(r *Record) bool {
		switch {
		case bytes.Equal(r.Key, key(3)):
			return false
		case r.Clock < 10:
			*r = Record{Key: r.Key, Clock: 100, Tombstone: true}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	bk, err := Open(dst, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Close()
	for i := 0; i < 30; i++ {
		r, _, err := bk.Get(key(i), nil)
		switch {
		case i == 3:
			if err != ErrNotFound {
				t.Errorf("key 3 (left out): %v", err)
			}
		case i+1 < 10:
			if err != nil || !r.Tombstone || r.Clock != 100 {
				t.Errorf("key %d: %v, tombstone %v, clock %d; want the tombstone at 100", i, err, r.Tombstone, r.Clock)
			}
		default:
			if err != nil || r.Tombstone || r.Clock != uint64(i+1) || !bytes.Equal(r.Value, val(i)) {
				t.Errorf("key %d: %v, %+v", i, err, r)
			}
		}
		if r, _, err := db.Get(key(i), nil); err != nil || r.Tombstone || r.Clock != uint64(i+1) {
			t.Errorf("key %d in the store changed: %v, %+v", i, err, r)
		}
	}
}
