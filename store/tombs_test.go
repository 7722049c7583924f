package store

import (
	"encoding/binary"
	"hash/crc32"
	"math/bits"
	"os"
	"testing"
	"time"
)

// Ensure that Stats.Tombstones and Stats.TombBytes follow puts of
// tombstones and values over each other, removals and compaction, and
// survive a clean reopen, a crash and headers written before the counts
// existed.
func TestTombstoneCount(t *testing.T) {
	withSlots(t, func(t *testing.T) {
		db, path := tempDB(t, nil)
		want := func(db *DB, n uint64, what string) {
			t.Helper()
			st := db.Stats()
			if st.Tombstones != n {
				t.Fatalf("%s: %d tombstones (of %d records), want %d", what, st.Tombstones, st.Records, n)
			}
			// Every key is one byte long; a tombstone keeps no value.
			tomb := uint64(recSize(1, 0, uint8(bits.TrailingZeros(uint(st.Alignment)))))
			if st.TombBytes != n*tomb {
				t.Fatalf("%s: %d tombstone bytes, want %d × %d", what, st.TombBytes, n, tomb)
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
		if st, err := Inform(path); err != nil || st.Tombstones != 2 || st.TombBytes == 0 {
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

		// Headers from before the counts: a flag and its count cleared
		// in both copies (the bytes only, then both); the counts are
		// recomputed at open.
		for _, old := range []struct {
			flags   byte
			from    int
			comment string
		}{
			{flagTombBytes, 104, "after opening a header without tombstone bytes"},
			{flagTombs | flagTombBytes, 96, "after opening a header without tombstones"},
		} {
			rewriteHeaders(t, path, old.flags, old.from)
			db, err = Open(path, &Options{Sync: SyncNone})
			if err != nil {
				t.Fatal(err)
			}
			want(db, 3, old.comment)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// rewriteHeaders clears flags and the header bytes from..112 in both
// header copies of the closed store at path, as an older binary wrote them.
func rewriteHeaders(t *testing.T, path string, flags byte, from int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
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
		old[14] &^= flags
		clear(old[from:112])
		binary.LittleEndian.PutUint32(old[252:], crc32.Checksum(old[:252], castagnoli))
		if _, err := f.WriteAt(old, copyOff); err != nil {
			t.Fatal(err)
		}
	}
}
