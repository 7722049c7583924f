package store

import (
	"bytes"
	"encoding/binary"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "update golden files in testdata/")

func goldenHeader() header {
	return header{apow: defaultApow, flags: flagOpen, seq: 7, bnum: 200000, logStart: logStartFor(200000),
		checkpoint: logStartFor(200000) + 4096, logEnd: logStartFor(200000) + 4096, rnum: 3, liveBytes: 144,
		delSlots: 1, tombs: 1, hasTombs: true, created: 1764000000_000000000, modified: 1764000001_000000000}
}

func goldenRecords() []byte {
	var b []byte
	b = appendRecord(b, &Record{Key: []byte("hello"), Value: []byte("world"), Clock: 0x6925_9a00_0000_0001, Flags: 42, Exptime: 1764003600}, 0, defaultApow)
	b = appendRecord(b, &Record{Key: []byte("gone"), Clock: 0x6925_9a00_0000_0002, Tombstone: true}, recTombstone, defaultApow)
	b = appendRecord(b, &Record{Key: []byte("purged")}, recRemove, defaultApow)
	return b
}

// Ensure that the header and record encodings match the golden bytes
// (run with -update after an intended format change).
func TestGolden(t *testing.T) {
	h := goldenHeader()
	for _, tc := range []struct {
		name string
		got  []byte
	}{
		{"header_v1.golden", appendHeader(nil, &h)},
		{"record_v1.golden", goldenRecords()},
	} {
		path := filepath.Join("testdata", tc.name)
		if *update {
			if err := os.WriteFile(path, tc.got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tc.got, want) {
			t.Errorf("%s: encoding changed:\n got %x\nwant %x", tc.name, tc.got, want)
		}
	}
	got, err := decodeHeader(appendHeader(nil, &h))
	if err != nil || got != h {
		t.Fatalf("header round trip: %v %+v", err, got)
	}
	// A header written before the tombstone count decodes without one.
	old, err := os.ReadFile(filepath.Join("testdata", "header_v1_notombs.golden"))
	if err != nil {
		t.Fatal(err)
	}
	got, err = decodeHeader(old)
	h.tombs, h.hasTombs = 0, false
	if err != nil || got != h {
		t.Fatalf("old header: %v %+v, want %+v", err, got, h)
	}
}

// Ensure that records decode from the golden bytes, and that every
// proper prefix (input arriving one byte at a time) is rejected rather
// than misread.
func TestDecodeRecordPrefixes(t *testing.T) {
	b := goldenRecords()
	want := []struct {
		key, value string
		rf         byte
		clock      uint64
	}{{"hello", "world", 0, 0x6925_9a00_0000_0001}, {"gone", "", recTombstone, 0x6925_9a00_0000_0002}, {"purged", "", recRemove, 0}}
	for _, w := range want {
		var rec Record
		for i := 0; i < recHdrSize+len(w.key)+len(w.value); i++ {
			if _, _, err := decodeRecord(b[:i], &rec); err != ErrCorrupt {
				t.Fatalf("%s: prefix %d: %v", w.key, i, err)
			}
		}
		n, rf, err := decodeRecord(b, &rec)
		if err != nil || rf != w.rf || string(rec.Key) != w.key || string(rec.Value) != w.value || rec.Clock != w.clock ||
			rec.Tombstone != (rf == recTombstone) {
			t.Fatalf("%s: %v %d %+v", w.key, err, rf, rec)
		}
		b = b[recSize(len(rec.Key), len(rec.Value), defaultApow):]
		_ = n
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes left", len(b))
	}
}

// FuzzDecodeRecord: any input either fails cleanly or re-encodes to the
// same bytes.
func FuzzDecodeRecord(f *testing.F) {
	b := goldenRecords()
	f.Add(b)
	f.Add(b[64:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		var rec Record
		n, rf, err := decodeRecord(p, &rec)
		if err != nil {
			if err != ErrCorrupt {
				t.Fatalf("error %v", err)
			}
			return
		}
		again := appendRecord(nil, &rec, rf, defaultApow)
		if !bytes.Equal(again[:n], p[:n]) {
			t.Fatalf("re-encode differs:\n%x\n%x", again[:n], p[:n])
		}
	})
}

// FuzzDecodeHeader: any input either fails with ErrBadHeader or
// re-encodes to the same 256 bytes.
func FuzzDecodeHeader(f *testing.F) {
	h := goldenHeader()
	f.Add(appendHeader(nil, &h))
	f.Add(make([]byte, headerSize))
	f.Fuzz(func(t *testing.T, p []byte) {
		h, err := decodeHeader(p)
		if err != nil {
			if err != ErrBadHeader {
				t.Fatalf("error %v", err)
			}
			return
		}
		again := appendHeader(nil, &h)
		if h.hasTombs {
			if !bytes.Equal(again, p[:headerSize]) {
				t.Fatalf("re-encode differs:\n%x\n%x", again, p[:headerSize])
			}
			return
		}
		// A header from before the tombstone count re-encodes with it.
		h2, err := decodeHeader(again)
		h.hasTombs = true
		if err != nil || h2 != h {
			t.Fatalf("re-encode of an old header: %v %+v, want %+v", err, h2, h)
		}
	})
}

// Ensure that the lease bits round-trip through the log, a reopen and a
// compaction, that a record carrying unknown lease bits, or lease bits on
// a tombstone, is corrupt, and that a tombstone never stores them.
func TestLeaseBits(t *testing.T) {
	db, path := tempDB(t, nil)
	recs := []Record{
		{Key: []byte("plain"), Value: []byte("v"), Clock: 1},
		{Key: []byte("stale"), Value: []byte("v"), Clock: 2, Stale: true},
		{Key: []byte("token"), Value: []byte("v"), Clock: 3, TokenSent: true},
		{Key: []byte("both"), Value: []byte(""), Clock: 4, Stale: true, TokenSent: true},
		{Key: []byte("tomb"), Clock: 5, Tombstone: true, Stale: true, TokenSent: true},
	}
	for i := range recs {
		if err := db.Put(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		for _, w := range recs {
			got := mustGet(t, db, string(w.Key))
			stale, token := w.Stale && !w.Tombstone, w.TokenSent && !w.Tombstone
			if got.Stale != stale || got.TokenSent != token || got.Tombstone != w.Tombstone || got.Clock != w.Clock {
				t.Fatalf("%s: %s: got %+v", when, w.Key, got)
			}
		}
	}
	check("fresh")
	if err := db.Compact(CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	check("compacted")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var err error
	if db, err = Open(path, &Options{Sync: SyncNone}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check("reopened")

	enc := func(lease uint32, rf byte) []byte {
		p := appendRecord(nil, &Record{Key: []byte("k"), Clock: 1}, rf, defaultApow)
		binary.LittleEndian.PutUint32(p[28:], lease)
		n := recHdrSize + 1
		binary.LittleEndian.PutUint32(p[0:], crc32.Checksum(p[4:n], castagnoli))
		return p
	}
	var rec Record
	if _, _, err := decodeRecord(enc(leaseMask, 0), &rec); err != nil || !rec.Stale || !rec.TokenSent {
		t.Fatalf("both bits: %v %+v", err, rec)
	}
	for _, c := range []struct {
		lease uint32
		rf    byte
	}{{4, 0}, {1 << 31, 0}, {leaseStale, recTombstone}, {leaseTokenSent, recRemove}} {
		if _, _, err := decodeRecord(enc(c.lease, c.rf), &rec); err != ErrCorrupt {
			t.Fatalf("lease %#x rf %d: %v, want ErrCorrupt", c.lease, c.rf, err)
		}
	}
}
