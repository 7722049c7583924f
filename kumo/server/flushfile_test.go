package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// flushRecords are valid records, the first of them the zero one.
var flushRecords = []flushRecord{
	{},
	{At: 0x6560_0000_0000_0003},
	{At: 0x6560_0000_0000_0003, Swept: 0x6560_0000_0000_0003},
	{At: 0x6560_0000_0000_0003, Swept: 0x655f_0000_0000_0001, Sched: []uint64{0x6560_0001, 0x6560_0100, 0xffff_ffff}},
	{Sched: []uint64{1}},
}

// rawFlushFile encodes a flush file field by field, checksum included,
// without the checks appendFlushRecord's callers rely on.
func rawFlushFile(magic string, version uint32, at, swept uint64, n uint32, sched ...uint64) []byte {
	b := append([]byte(nil), magic...)
	b = binary.LittleEndian.AppendUint32(b, version)
	b = binary.LittleEndian.AppendUint64(b, at)
	b = binary.LittleEndian.AppendUint64(b, swept)
	b = binary.LittleEndian.AppendUint32(b, n)
	for _, t := range sched {
		b = binary.LittleEndian.AppendUint64(b, t)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// Ensure that every valid record survives encoding and decoding, also when
// the reader hands it over one byte or half a buffer at a time, and that
// the encoding is the documented layout.
func TestFlushFileRoundTrip(t *testing.T) {
	for i, want := range flushRecords {
		enc := appendFlushRecord(nil, &want)
		if raw := rawFlushFile(flushMagic, 1, want.At, want.Swept, uint32(len(want.Sched)), want.Sched...); !bytes.Equal(enc, raw) {
			t.Fatalf("record %d encodes as\n%x\nwant\n%x", i, enc, raw)
		}
		if len(enc) != flushHeaderLen+8*len(want.Sched)+4 {
			t.Fatalf("record %d: %d bytes", i, len(enc))
		}
		readers := map[string]func(io.Reader) io.Reader{
			"whole":    func(r io.Reader) io.Reader { return r },
			"one byte": iotest.OneByteReader,
			"half":     iotest.HalfReader,
			"data err": iotest.DataErrReader,
		}
		for name, wrap := range readers {
			got, err := readFlushRecord(wrap(bytes.NewReader(enc)))
			if err != nil {
				t.Fatalf("record %d, %s: %v", i, name, err)
			}
			if !got.equal(&want) || (got.Sched == nil) != (len(want.Sched) == 0) {
				t.Fatalf("record %d, %s: got %+v, want %+v", i, name, got, want)
			}
		}
	}
}

// Ensure that a reader error is returned as is, not as a corrupt file.
func TestFlushFileReadError(t *testing.T) {
	boom := errors.New("boom")
	enc := appendFlushRecord(nil, &flushRecords[3])
	_, err := readFlushRecord(io.MultiReader(bytes.NewReader(enc[:10]), iotest.ErrReader(boom)))
	if err != boom {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

// Ensure that the encoding of a fixed record does not change by accident:
// a flush file written by one version is read by the next.
func TestFlushFileGolden(t *testing.T) {
	golden := filepath.Join("testdata", "flushfile.golden")
	enc := appendFlushRecord(nil, &flushRecords[3])
	if *update {
		if err := os.WriteFile(golden, enc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, want) {
		t.Fatalf("encoding\n%x\ndiffers from %s\n%x", enc, golden, want)
	}
}

// Ensure that every single-byte change, every truncation and every
// appended byte of a flush file is detected.
func TestFlushFileDetectsCorruption(t *testing.T) {
	for i, rec := range flushRecords {
		enc := appendFlushRecord(nil, &rec)
		for pos := range enc {
			for _, x := range []byte{0x01, 0x02, 0x10, 0x80, 0xff, 0x5a} {
				bad := bytes.Clone(enc)
				bad[pos] ^= x
				if got, err := parseFlushRecord(bad); err == nil {
					t.Fatalf("record %d: byte %d ^ %#x accepted as %+v", i, pos, x, got)
				}
			}
		}
		for n := range len(enc) {
			if got, err := parseFlushRecord(enc[:n]); !errors.Is(err, ErrFlushFileCorrupt) {
				t.Fatalf("record %d cut to %d bytes: %+v, %v", i, n, got, err)
			}
		}
		for _, tail := range [][]byte{{0}, {0, 0, 0, 0, 0, 0, 0, 0}} {
			if got, err := parseFlushRecord(append(bytes.Clone(enc), tail...)); !errors.Is(err, ErrFlushFileCorrupt) {
				t.Fatalf("record %d with %d bytes appended: %+v, %v", i, len(tail), got, err)
			}
		}
	}
}

// Ensure that files whose checksum is right but whose content breaks the
// format's rules are refused, each with its reason.
func TestFlushFileErrors(t *testing.T) {
	long := make([]byte, maxFlushFileSize+1)
	copy(long, rawFlushFile(flushMagic, 1, 0, 0, 0))
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "server: flush file is corrupt: 0 bytes, too short"},
		{"magic", rawFlushFile("kumoflsH", 1, 0, 0, 0), "server: flush file is corrupt: not a flush file (bad magic)"},
		{"version 0", rawFlushFile(flushMagic, 0, 0, 0, 0), "server: flush file version is not supported: version 0, this kumo-server reads version 1"},
		{"version 2", rawFlushFile(flushMagic, 2, 7, 7, 0), "server: flush file version is not supported: version 2, this kumo-server reads version 1"},
		{"count above", rawFlushFile(flushMagic, 1, 0, 0, 2, 5), "server: flush file is corrupt: 2 scheduled flushes in 8 bytes"},
		{"count below", rawFlushFile(flushMagic, 1, 0, 0, 0, 5), "server: flush file is corrupt: 0 scheduled flushes in 8 bytes"},
		{"count huge", rawFlushFile(flushMagic, 1, 0, 0, 1<<31), "server: flush file is corrupt: 2147483648 scheduled flushes in 0 bytes"},
		{"swept above", rawFlushFile(flushMagic, 1, 5, 6, 0), "server: flush file is corrupt: swept point 0x6 above the flush point 0x5"},
		{"unordered", rawFlushFile(flushMagic, 1, 0, 0, 2, 9, 8), "server: flush file is corrupt: scheduled flushes out of order"},
		{"twice", rawFlushFile(flushMagic, 1, 0, 0, 2, 9, 9), "server: flush file is corrupt: scheduled flushes out of order"},
		{"not a second", rawFlushFile(flushMagic, 1, 0, 0, 1, 1<<32), "server: flush file is corrupt: scheduled flush at 4294967296 is not a unix second"},
	}
	for _, tt := range tests {
		_, err := parseFlushRecord(tt.data)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: err = %v\nwant %s", tt.name, err, tt.want)
		}
	}
	if _, err := readFlushRecord(bytes.NewReader(long)); err == nil || err.Error() != "server: flush file is corrupt: longer than 8228 bytes" {
		t.Errorf("long: %v", err)
	}
	if _, err := parseFlushRecord(rawFlushFile(flushMagic, 2, 0, 0, 0)); !errors.Is(err, ErrFlushFileVersion) {
		t.Errorf("version 2: %v is not ErrFlushFileVersion", err)
	}
}

// Ensure that writeFlushFile and loadFlushFile round-trip through a file,
// that a missing file means no flush point, that a write leaves no
// temporary file behind, and that a failed write leaves the old file.
func TestFlushFileWriteLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db.kch.flush")
	if rec, err := loadFlushFile(path); err != nil || !rec.equal(&flushRecord{}) {
		t.Fatalf("missing file: %+v, %v", rec, err)
	}
	for i, want := range flushRecords {
		if err := writeFlushFile(path, &want); err != nil {
			t.Fatal(err)
		}
		got, err := loadFlushFile(path)
		if err != nil || !got.equal(&want) {
			t.Fatalf("record %d: loaded %+v, %v", i, got, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 || ents[0].Name() != "db.kch.flush" {
		t.Fatalf("folder holds %v, %v; want only the flush file", ents, err)
	}

	// A folder where the temporary file goes: the write fails.
	if err := os.Mkdir(path+".tmp", 0o755); err != nil {
		t.Fatal(err)
	}
	err = writeFlushFile(path, &flushRecords[1])
	if want := "server: writing the flush file: open " + path + ".tmp: is a directory"; err == nil || err.Error() != want {
		t.Fatalf("write over a folder: %v, want %s", err, want)
	}
	if got, err := loadFlushFile(path); err != nil || !got.equal(&flushRecords[len(flushRecords)-1]) {
		t.Fatalf("after a failed write: %+v, %v", got, err)
	}

	// A corrupt file names itself in the error.
	if err := os.WriteFile(path, []byte("kumoflsh"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadFlushFile(path); err == nil || err.Error() != "server: flush file is corrupt: 8 bytes, too short ("+path+")" {
		t.Fatalf("corrupt: %v", err)
	}
	// A file that cannot be read (a folder) is an error, not "no file".
	_, err = loadFlushFile(path + ".tmp")
	if want := "server: reading the flush file: read " + path + ".tmp: is a directory"; err == nil || err.Error() != want || !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("folder: %v, want %s", err, want)
	}
}

// Ensure that the schedule operations keep the schedule sorted, unique and
// free of flushes that are moot under the flush point.
func TestFlushRecordSchedule(t *testing.T) {
	var r flushRecord
	for _, at := range []uint64{30, 10, 20, 10} {
		r.schedule(at)
	}
	if want := (flushRecord{Sched: []uint64{10, 20, 30}}); !r.equal(&want) {
		t.Fatalf("scheduled: %+v", r)
	}
	r.fire(20)
	if want := (flushRecord{At: 20 << 32, Sched: []uint64{10, 30}}); !r.equal(&want) {
		t.Fatalf("after fire(20): %+v", r)
	}
	// 10 is moot now: prune drops it, schedule refuses it.
	r.prune()
	if want := (flushRecord{At: 20 << 32, Sched: []uint64{30}}); !r.equal(&want) {
		t.Fatalf("after prune: %+v", r)
	}
	if r.schedule(20) || r.schedule(30) || !r.schedule(31) {
		t.Fatalf("schedule of moot, present, new: %+v", r)
	}
	r.fire(40) // not scheduled: only the flush point moves
	r.prune()
	if want := (flushRecord{At: 40 << 32}); !r.equal(&want) || r.Sched != nil {
		t.Fatalf("after fire(40): %+v", r)
	}
}

// FuzzFlushFile checks that the decoder never panics, that everything it
// accepts is in the canonical encoding, and that it reads the same one
// byte at a time.
func FuzzFlushFile(f *testing.F) {
	for _, rec := range flushRecords {
		f.Add(appendFlushRecord(nil, &rec))
	}
	f.Add([]byte{})
	f.Add(rawFlushFile(flushMagic, 2, 0, 0, 0))
	f.Add(rawFlushFile(flushMagic, 1, 0, 0, 2, 9, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := parseFlushRecord(data)
		rec2, err2 := readFlushRecord(iotest.OneByteReader(bytes.NewReader(data)))
		if (err == nil) != (err2 == nil) || !rec.equal(&rec2) {
			t.Fatalf("parse %+v, %v; read one byte at a time %+v, %v", rec, err, rec2, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrFlushFileCorrupt) && !errors.Is(err, ErrFlushFileVersion) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if enc := appendFlushRecord(nil, &rec); !bytes.Equal(enc, data) {
			t.Fatalf("accepted\n%x\nre-encodes as\n%x", data, enc)
		}
	})
}
