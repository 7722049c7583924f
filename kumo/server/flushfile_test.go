package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"kumofs/internal/logging"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
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
	if r.fire(40) { // not scheduled (a later flush_all replaced it): nothing moves
		t.Fatalf("fire(40) reported a scheduled flush")
	}
	if want := (flushRecord{At: 20 << 32, Sched: []uint64{30, 31}}); !r.equal(&want) {
		t.Fatalf("after fire(40): %+v", r)
	}
	if !r.fire(31) {
		t.Fatalf("fire(31) did not report it scheduled")
	}
	r.prune()
	if want := (flushRecord{At: 31 << 32}); !r.equal(&want) || r.Sched != nil {
		t.Fatalf("after fire(31): %+v", r)
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

// Ensure that New refuses to start on a flush file it cannot verify, says
// why and how to recover in its error and in one log line, and leaves the
// store closed; and that it starts once the file is deleted.
func TestFlushRefusesCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.kch")
	s, cl := startAlone(t, path)
	flushAt(t, cl, 2000)
	cl.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fpath := flushFilePath(path)
	data, err := os.ReadFile(fpath)
	if err != nil {
		t.Fatal(err)
	}
	data[len(flushMagic)+4] ^= 1 // the flush point's low byte
	if err := os.WriteFile(fpath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	_, err = New(Config{
		Self:      testSelf,
		Listen:    "127.0.0.1:0",
		StorePath: path,
		Log:       logging.New(&logs, logging.Info).With("server"),
	})
	want := "server: flush file is corrupt: checksum mismatch (" + fpath + "); not starting, as the store may still hold values flushed before the stop: delete the file to start anyway (those values may come back)"
	if err == nil || err.Error() != want {
		t.Fatalf("New = %v\nwant %s", err, want)
	}
	if !errors.Is(err, ErrFlushFileCorrupt) {
		t.Fatalf("%v is not ErrFlushFileCorrupt", err)
	}
	if lines := strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n"); len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Fatalf("log:\n%s\nwant one line with the error", logs.String())
	}

	// Another version: refused too.
	if err := os.WriteFile(fpath, rawFlushFile(flushMagic, 2, 0, 0, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{Self: testSelf, Listen: "127.0.0.1:0", StorePath: path, Log: logging.New(io.Discard, logging.Info)})
	if !errors.Is(err, ErrFlushFileVersion) {
		t.Fatalf("New on a version 2 file = %v", err)
	}

	if err := os.Remove(fpath); err != nil {
		t.Fatal(err)
	}
	s2, _ := startAlone(t, path) // the store was closed: not locked
	if s2.flushing.at.Load() != 0 {
		t.Fatal("a flush point without a flush file")
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test together.
type syncBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// flushErr sends SrvFlush for at and returns the error it is answered with.
func flushErr(t *testing.T, cl *rpc.Client, at uint64) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cl.Call(ctx, wire.SrvFlush, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendUint(b, at)
	})
	if err == nil {
		res.Release()
	}
	return err
}

// Ensure that a flush_all whose flush file cannot be written is answered
// with an error, logged once, and not in force (it would not survive a
// crash); a delayed one is not scheduled either.
func TestFlushWriteFailureIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.kch")
	var logs syncBuffer
	s, err := New(Config{
		Self:      testSelf,
		Listen:    "127.0.0.1:0",
		StorePath: path,
		Log:       logging.New(&logs, logging.Info).With("server"),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := ring.New([]ring.Node{{Addr: testSelf, Active: true}}, s.clk.Now())
	s.whs.Store(hs)
	s.rhs.Store(hs)
	cl := rpc.Dial(s.Addr().String(), rpc.Options{CallTimeout: 10 * time.Second})
	t.Cleanup(func() { cl.Close(); s.Close() })
	if st := storeKey(t, cl, wire.OpSet, "k", "v"); st != wire.StatusOK {
		t.Fatalf("set: status %d", st)
	}
	tmp := flushFilePath(path) + ".tmp"
	if err := os.Mkdir(tmp, 0o755); err != nil { // the temporary file cannot be created
		t.Fatal(err)
	}
	// Peers get a fixed text (no server paths); the server logs the cause.
	msg := "server: cannot record the flush (see the server's log)"
	for _, at := range []uint64{0, 2000, uint64(time.Now().Unix() + 3600)} {
		err := flushErr(t, cl, at)
		var re *rpc.Error
		if !errors.As(err, &re) || re.Msg != msg {
			t.Fatalf("flush at %d answered %v, want the error %q", at, err, msg)
		}
	}
	if got := s.flushing.at.Load(); got != 0 {
		t.Fatalf("flush point %#x after failed flushes", got)
	}
	if _, ok := getKey(t, cl, wire.SrvGet, "k"); !ok {
		t.Fatal("a flush that was refused hid k")
	}
	s.flushMu.Lock()
	armed := len(s.flushTimers)
	s.flushMu.Unlock()
	if armed != 0 {
		t.Fatalf("%d timers armed for a refused delayed flush", armed)
	}
	cause := "server: writing the flush file: open " + tmp + ": is a directory"
	if n := strings.Count(logs.String(), "flush_all refused: "+cause); n != 3 {
		t.Fatalf("%d log lines for 3 refused flushes:\n%s", n, logs.String())
	}

	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	flushAt(t, cl, 0)
	if _, ok := getKey(t, cl, wire.SrvGet, "k"); ok {
		t.Fatal("k survived a flush")
	}
}

// Ensure that a delayed flush whose flush file write fails when it fires
// is in force anyway, and that the next start, which finds it still
// scheduled, fires it again at once.
func TestFlushFiredWriteFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.kch")
	s, cl := startAlone(t, path)
	if st := storeKey(t, cl, wire.OpSet, "k", "v"); st != wire.StatusOK {
		t.Fatalf("set: status %d", st)
	}
	at := uint64(time.Now().Unix() + 1)
	flushAt(t, cl, at)
	tmp := flushFilePath(path) + ".tmp"
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "delayed flush", func() bool { return s.flushing.at.Load() == at<<32 })
	if _, ok := getKey(t, cl, wire.SrvGet, "k"); ok {
		t.Fatal("k survived the delayed flush")
	}
	cl.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rec := flushFileOf(t, path); !rec.equal(&flushRecord{Sched: []uint64{at}}) {
		t.Fatalf("flush file %+v, want the flush still scheduled", rec)
	}
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	s2, _ := startAlone(t, path)
	if got := s2.flushing.at.Load(); got != at<<32 {
		t.Fatalf("flush point after the restart %#x, want %#x", got, at<<32)
	}
	waitUntil(t, "flush file", func() bool {
		return flushFileOf(t, path).equal(&flushRecord{At: at << 32, Swept: at << 32})
	})
}

// Ensure that a flush_all replaces the delayed flushes still pending, as in
// memcached: a later delayed one leaves only itself scheduled (also over a
// flush file of an older version that lists many), and an immediate one
// leaves none, so none fires later and wipes what was written after it.
func TestFlushReplacesSchedule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.kch")
	base := uint64(time.Now().Unix() + 3600)
	var rec flushRecord
	for i := range uint64(maxScheduled) {
		rec.Sched = append(rec.Sched, base+i)
	}
	if err := writeFlushFile(flushFilePath(path), &rec); err != nil {
		t.Fatal(err)
	}
	s, cl := startAlone(t, path)
	flushAt(t, cl, base+maxScheduled)
	if got := flushFileOf(t, path); !got.equal(&flushRecord{Sched: []uint64{base + maxScheduled}}) {
		t.Fatalf("flush file after a delayed flush: at %#x, scheduled %v", got.At, got.Sched)
	}
	flushAt(t, cl, base) // earlier than the pending one: replaces it too
	if got := flushFileOf(t, path); !got.equal(&flushRecord{Sched: []uint64{base}}) {
		t.Fatalf("flush file after an earlier delayed flush: at %#x, scheduled %v", got.At, got.Sched)
	}
	// A timer of a replaced flush changes nothing when it fires.
	s.fireFlush(base + 1)
	if got := s.flushing.at.Load(); got != 0 {
		t.Fatalf("a replaced delayed flush fired: flush point %#x", got)
	}
	flushAt(t, cl, 0)
	if got := flushFileOf(t, path); got.At != s.flushing.at.Load() || got.At == 0 || got.Sched != nil {
		t.Fatalf("flush file after flush_all: at %#x, scheduled %v", got.At, got.Sched)
	}
}
