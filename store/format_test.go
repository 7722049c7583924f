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
		delSlots: 1, tombs: 1, hasTombs: true, tombBytes: 48, hasTombBytes: true, created: 1764000000_000000000, modified: 1764000001_000000000}
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
	// Headers written before the tombstone bytes, and before the
	// tombstone count, decode without them.
	h.tombBytes, h.hasTombBytes = 0, false
	for _, name := range []string{"header_v1_notombbytes.golden", "header_v1_notombs.golden"} {
		old, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err = decodeHeader(old)
		if name == "header_v1_notombs.golden" {
			h.tombs, h.hasTombs = 0, false
		}
		if err != nil || got != h {
			t.Fatalf("%s: %v %+v, want %+v", name, err, got, h)
		}
	}
	// The tombstone bytes without the count are no header kumo wrote.
	bad := appendHeader(nil, &h)
	bad[14] = byte(flagOpen | flagTombBytes)
	clear(bad[96:104])
	binary.LittleEndian.PutUint32(bad[252:], crc32.Checksum(bad[:252], castagnoli))
	if _, err := decodeHeader(bad); err != ErrBadHeader {
		t.Fatalf("tombstone bytes without the count: %v", err)
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
		if h.hasTombs && h.hasTombBytes {
			if !bytes.Equal(again, p[:headerSize]) {
				t.Fatalf("re-encode differs:\n%x\n%x", again, p[:headerSize])
			}
			return
		}
		// A header from before the tombstone counts re-encodes with them.
		h2, err := decodeHeader(again)
		h.hasTombs, h.hasTombBytes = true, true
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
	if _, _, err := decodeRecord(enc(leaseStale|leaseTokenSent, 0), &rec); err != nil || !rec.Stale || !rec.TokenSent {
		t.Fatalf("both bits: %v %+v", err, rec)
	}
	for _, c := range []struct {
		lease uint32
		rf    byte
	}{{leaseCas, 0}, {8, 0}, {1 << 31, 0}, {leaseStale, recTombstone}, {leaseTokenSent, recRemove}, {leaseCas, recTombstone}} {
		if _, _, err := decodeRecord(enc(c.lease, c.rf), &rec); err != ErrCorrupt {
			t.Fatalf("lease %#x rf %d: %v, want ErrCorrupt", c.lease, c.rf, err)
		}
	}
}

// Ensure that a record's own CAS unique (Record.Cas) round-trips through
// Get (from the mapping and by pread beyond it), Update's view of the old
// record, ForEach, a compaction, a clean reopen and the recovery after a
// crash; that a tombstone does not store it; and that a record whose CAS
// field is short or 0 is corrupt.
func TestCasField(t *testing.T) {
	defer func(old int64) { mapReserve = old }(mapReserve)
	for _, small := range []bool{false, true} {
		if small {
			mapReserve = 64 << 10 // records beyond the mapping: Get preads
		}
		db, path := tempDB(t, &Options{Sync: SyncNone, Buckets: 256})
		recs := []Record{
			{Key: []byte("plain"), Value: []byte("v1"), Clock: 10},
			{Key: []byte("touched"), Value: []byte("value"), Clock: 20, Cas: 11, Flags: 7, Exptime: 4000000000},
			{Key: []byte("empty"), Value: []byte{}, Clock: 21, Cas: 12, Stale: true},
			{Key: []byte("same"), Value: []byte("x"), Clock: 22, Cas: 22},
			{Key: []byte("tomb"), Clock: 23, Cas: 13, Tombstone: true},
			{Key: []byte("big"), Value: bytes.Repeat([]byte("b"), 5000), Clock: 24, Cas: 14},
		}
		want := func(r Record) Record {
			if r.Tombstone {
				r.Cas = 0
			}
			if r.Tombstone {
				r.Value = nil
			}
			return r
		}
		for i := range recs {
			if err := db.Put(&recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		check := func(when string) {
			t.Helper()
			for _, r := range recs {
				w := want(r)
				got := mustGet(t, db, string(r.Key))
				if got.Cas != w.Cas || got.Clock != w.Clock || !bytes.Equal(got.Value, w.Value) ||
					got.Flags != w.Flags || got.Exptime != w.Exptime || got.Stale != w.Stale || got.Tombstone != w.Tombstone {
					t.Fatalf("small %v, %s: %s: got %+v, want %+v", small, when, r.Key, got, w)
				}
				if wc := w.Cas; (wc != 0 && got.CAS() != wc) || (wc == 0 && got.CAS() != w.Clock) {
					t.Fatalf("small %v, %s: %s: CAS() %d", small, when, r.Key, got.CAS())
				}
			}
			seen := 0
			err := db.ForEach(func(rec *Record) error {
				for _, r := range recs {
					if string(r.Key) == string(rec.Key) {
						seen++
						if w := want(r); rec.Cas != w.Cas || !bytes.Equal(rec.Value, w.Value) {
							t.Fatalf("small %v, %s: ForEach %s: Cas %d value %.10q", small, when, r.Key, rec.Cas, rec.Value)
						}
					}
				}
				return nil
			})
			if err != nil || seen != len(recs) {
				t.Fatalf("small %v, %s: ForEach saw %d of %d: %v", small, when, seen, len(recs), err)
			}
		}
		check("fresh")
		// Update sees the old record's CAS unique and value.
		upd := Record{Key: []byte("touched"), Value: []byte("value"), Clock: 30, Cas: 11, Flags: 7, Exptime: 4000000000}
		if ok, err := db.Update(&upd, func(old *Record) bool {
			if old.Cas != 11 || old.CAS() != 11 || string(old.Value) != "value" {
				t.Fatalf("small %v: Update's old record %+v", small, *old)
			}
			return true
		}); err != nil || !ok {
			t.Fatalf("Update: %v %v", ok, err)
		}
		recs[1].Clock = 30
		check("updated")
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
		check("reopened")
		upd.Clock, upd.Value = 40, []byte("value2")
		recs[1].Clock, recs[1].Value = 40, upd.Value
		if err := db.Put(&upd); err != nil {
			t.Fatal(err)
		}
		db.crash() // the recovery replays the record written after the checkpoint
		if db, err = Open(path, &Options{Sync: SyncNone}); err != nil {
			t.Fatal(err)
		}
		check("recovered")
		db.Close()
		if rep, err := Verify(path); err != nil {
			t.Fatalf("Verify: %v %+v", err, rep)
		}
	}

	var rec Record
	p := appendRecord(nil, &Record{Key: []byte("k"), Value: []byte("abc"), Clock: 5, Cas: 3}, 0, defaultApow)
	if n, _, err := decodeRecord(p, &rec); err != nil || n != recHdrSize+1+casLen+3 || rec.Cas != 3 || string(rec.Value) != "abc" {
		t.Fatalf("decode: n %d %v %+v", n, err, rec)
	}
	if binary.LittleEndian.Uint32(p[8:]) != casLen+3 {
		t.Fatalf("vlen %d, want %d", binary.LittleEndian.Uint32(p[8:]), casLen+3)
	}
	clear(p[recHdrSize+1 : recHdrSize+1+casLen])
	binary.LittleEndian.PutUint32(p[0:], crc32.Checksum(p[4:recHdrSize+1+casLen+3], castagnoli))
	if _, _, err := decodeRecord(p, &rec); err != ErrCorrupt {
		t.Fatalf("a CAS field of 0: %v, want ErrCorrupt", err)
	}
}
