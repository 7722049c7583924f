package store

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"testing"
	"time"
)

// Ensure that Stats.Tombstones follows puts of tombstones and values over
// each other, removals and compaction, and survives a clean reopen, a crash
// and a header written before the count existed.
func TestTombstoneCount(t *testing.T) {
	withSlots(t, func(t *testing.T) {
		db, path := tempDB(t, nil)
		want := func(db *DB, n uint64, what string) {
			t.Helper()
			if st := db.Stats(); st.Tombstones != n {
				t.Fatalf("%s: %d tombstones (of %d records), want %d", what, st.Tombstones, st.Records, n)
			}
		}
		put := func(k string, tomb bool) {
			t.Helper()
			if err := db.Put(&Record{Key: []byte(k), Value: []byte("v"), Clock: 1, Tombstone: tomb}); err != nil {
				t.Fatal(err)
			}
		}
		put("a", false)
		put("b", true)
		put("c", true)
		put("d", true)
		want(db, 3, "three deletes")
		put("b", true) // tombstone over tombstone
		put("c", false)
		put("a", true)
		want(db, 3, "after overwrites")
		if _, err := db.Delete([]byte("d"), nil); err != nil {
			t.Fatal(err)
		}
		want(db, 2, "after purging one")
		if err := db.Compact(CompactOptions{Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
		want(db, 2, "after compaction")
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if st, err := Inform(path); err != nil || st.Tombstones != 2 {
			t.Fatalf("closed file: %+v %v", st, err)
		}
		db, err := Open(path, &Options{Sync: SyncNone})
		if err != nil {
			t.Fatal(err)
		}
		want(db, 2, "after a clean reopen")
		put = func(k string, tomb bool) {
			t.Helper()
			if err := db.Put(&Record{Key: []byte(k), Value: []byte("v"), Clock: 2, Tombstone: tomb}); err != nil {
				t.Fatal(err)
			}
		}
		put("e", true)
		db.crash()
		db, err = Open(path, &Options{Sync: SyncNone})
		if err != nil {
			t.Fatal(err)
		}
		want(db, 3, "after a crash")
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		// A header from before the count: the flag and the count cleared
		// in both copies; the count is recomputed at open.
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, copyOff := range []int64{0, headerCopyB} {
			p := make([]byte, headerSize)
			if _, err := f.ReadAt(p, copyOff); err != nil {
				t.Fatal(err)
			}
			h, err := decodeHeader(p)
			if err != nil {
				continue
			}
			old := appendHeader(nil, &h)
			old[14] &^= flagTombs
			clear(old[96:104])
			binary.LittleEndian.PutUint32(old[252:], crc32.Checksum(old[:252], castagnoli))
			if _, err := f.WriteAt(old, copyOff); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		db, err = Open(path, &Options{Sync: SyncNone})
		if err != nil {
			t.Fatal(err)
		}
		want(db, 3, "after opening an old header")
		db.Close()
	})
}
