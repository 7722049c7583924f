package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"kumofs/store"
)

// rec is a record as the tests write and expect it.
type rec struct {
	Clock     uint64
	Flags     uint32
	Exptime   uint32
	Value     string
	Tombstone bool
}

func val(clock uint64, v string) rec { return rec{Clock: clock, Value: v} }
func tomb(clock uint64) rec          { return rec{Clock: clock, Tombstone: true} }

// clk is a ClockTime at second s with counter c.
func clk(s, c uint64) uint64 { return (1795600000+s)<<32 | c }

// build writes a store at path holding recs (buckets 0: store default).
func build(t *testing.T, path string, buckets uint64, recs map[string]rec) {
	t.Helper()
	db, err := store.Open(path, &store.Options{Sync: store.SyncNone, Buckets: buckets})
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range recs {
		err := db.Put(&store.Record{Key: []byte(k), Value: []byte(r.Value), Clock: r.Clock,
			Flags: r.Flags, Exptime: r.Exptime, Tombstone: r.Tombstone})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// dump returns every record of the store at path.
func dump(t *testing.T, path string) map[string]rec {
	t.Helper()
	db, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := map[string]rec{}
	err = db.ForEach(func(r *store.Record) error {
		m[string(r.Key)] = rec{Clock: r.Clock, Flags: r.Flags, Exptime: r.Exptime, Value: string(r.Value), Tombstone: r.Tombstone}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestMerge(t *testing.T) {
	src1 := map[string]rec{
		"a":      val(clk(1, 0), "a-old"),
		"b":      {Clock: clk(3, 0), Flags: 0xdeadbeef, Exptime: 1900000000, Value: "b-new"},
		"c":      tomb(clk(4, 0)),
		"d":      tomb(clk(1, 0)),
		"e":      val(clk(5, 1), "e-first"),
		"only1":  {Clock: clk(1, 7), Flags: 1, Value: "x"},
		"tomb1":  tomb(clk(2, 2)),
		"bigger": val(clk(9, 0), strings.Repeat("v", 5000)),
	}
	src2 := map[string]rec{
		"a":      {Clock: clk(2, 0), Flags: 42, Exptime: 7, Value: "a-new"},
		"b":      val(clk(2, 9), "b-old"),
		"c":      val(clk(3, 0), "c-value-older-than-delete"),
		"d":      val(clk(1, 1), "d-value-newer-than-delete"),
		"e":      val(clk(5, 1), "e-second"),
		"only2":  val(clk(6, 0), "y"),
		"bigger": val(clk(8, 0), "small"),
	}
	want := map[string]rec{
		"a":      src2["a"],
		"b":      src1["b"],
		"c":      src1["c"],
		"d":      src2["d"],
		"e":      src1["e"], // equal clocks: the destination keeps its version
		"only1":  src1["only1"],
		"only2":  src2["only2"],
		"tomb1":  src1["tomb1"],
		"bigger": src1["bigger"],
	}
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "s1-20261125"), filepath.Join(dir, "s2-20261125")
	build(t, p1, 1024, src1)
	build(t, p2, 1024, src2)
	dst := filepath.Join(dir, "merged")
	code, out, errOut := runCmd(dst, p1, p2)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	wantOut := fmt.Sprintf("merging %s...  merged 8 records of 8 records\n"+
		"merging %s...  merged 3 records of 7 records\n"+
		"closing %s...\ndone.\n", p1, p2, dst)
	if out != wantOut {
		t.Errorf("output\n%s\nwant\n%s", out, wantOut)
	}
	if got := dump(t, dst); !reflect.DeepEqual(got, want) {
		t.Errorf("merged records\n%v\nwant\n%v", got, want)
	}

	// The other order gives the same records, except the tie.
	dst2 := filepath.Join(dir, "merged2")
	code, out, _ = runCmd(dst2, p2, p1)
	wantOut = fmt.Sprintf("merging %s...  merged 7 records of 7 records\n"+
		"merging %s...  merged 5 records of 8 records\n"+
		"closing %s...\ndone.\n", p2, p1, dst2)
	if code != 0 || out != wantOut {
		t.Errorf("exit %d, output\n%s\nwant\n%s", code, out, wantOut)
	}
	want["e"] = src2["e"]
	if got := dump(t, dst2); !reflect.DeepEqual(got, want) {
		t.Errorf("merged records (reversed)\n%v\nwant\n%v", got, want)
	}

	// Sources are left as they were.
	if got := dump(t, p1); !reflect.DeepEqual(got, src1) {
		t.Errorf("source changed\n%v\nwant\n%v", got, src1)
	}
}

// TestMergeIntoExisting merges one source into a destination that already
// holds data; merging the same source again changes nothing.
func TestMergeIntoExisting(t *testing.T) {
	dir := t.TempDir()
	dst, src := filepath.Join(dir, "dst"), filepath.Join(dir, "src")
	build(t, dst, 1024, map[string]rec{
		"kept":    val(clk(10, 0), "dst-newer"),
		"lost":    val(clk(1, 0), "dst-older"),
		"dstonly": {Clock: clk(1, 0), Flags: 3, Exptime: 5, Value: "mine"},
		"revived": tomb(clk(1, 0)),
		"deleted": val(clk(1, 0), "gone"),
	})
	build(t, src, 1024, map[string]rec{
		"kept":    val(clk(9, 0), "src-older"),
		"lost":    val(clk(1, 1), "src-newer"),
		"revived": val(clk(2, 0), "back"),
		"deleted": tomb(clk(1, 5)),
	})
	want := map[string]rec{
		"kept":    val(clk(10, 0), "dst-newer"),
		"lost":    val(clk(1, 1), "src-newer"),
		"dstonly": {Clock: clk(1, 0), Flags: 3, Exptime: 5, Value: "mine"},
		"revived": val(clk(2, 0), "back"),
		"deleted": tomb(clk(1, 5)),
	}
	for i, merged := range []int{3, 0} {
		code, out, errOut := runCmd(dst, src)
		wantOut := fmt.Sprintf("merging %s...  merged %d records of 4 records\nclosing %s...\ndone.\n", src, merged, dst)
		if code != 0 || out != wantOut || errOut != "" {
			t.Errorf("run %d: exit %d, stdout\n%s\nwant\n%s\nstderr %q", i, code, out, wantOut, errOut)
		}
		if got := dump(t, dst); !reflect.DeepEqual(got, want) {
			t.Errorf("run %d: records\n%v\nwant\n%v", i, got, want)
		}
	}
}

// TestMergeGrows merges more keys than a small existing destination has
// buckets for: the destination is optimized to a larger bucket number.
func TestMergeGrows(t *testing.T) {
	dir := t.TempDir()
	dst, src := filepath.Join(dir, "dst"), filepath.Join(dir, "src")
	if err := store.Create(dst, 8); err != nil {
		t.Fatal(err)
	}
	want := map[string]rec{}
	for i := range 200 {
		want[fmt.Sprintf("key%03d", i)] = rec{Clock: clk(uint64(i), 0), Flags: uint32(i), Value: fmt.Sprint(i)}
	}
	build(t, src, 1024, want)
	code, out, errOut := runCmd(dst, src)
	wantOut := fmt.Sprintf("merging %s...  merged 200 records of 200 records\nclosing %s...\ndone.\n", src, dst)
	if code != 0 || out != wantOut || errOut != "" {
		t.Fatalf("exit %d, stdout\n%s\nwant\n%s\nstderr %q", code, out, wantOut, errOut)
	}
	if got := dump(t, dst); !reflect.DeepEqual(got, want) {
		t.Errorf("records differ: got %d, want %d", len(got), len(want))
	}
}

// TestNewDestinationSize: a new destination gets at least the bucket
// number of the largest source.
func TestNewDestinationSize(t *testing.T) {
	dir := t.TempDir()
	dst, src := filepath.Join(dir, "dst"), filepath.Join(dir, "src")
	build(t, src, 4096, map[string]rec{"k": val(1, "v")})
	if code, _, errOut := runCmd(dst, src); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	st, err := store.Inform(dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Buckets < 4096 {
		t.Errorf("destination has %d buckets, want at least 4096", st.Buckets)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	build(t, src, 1024, map[string]rec{"k": val(1, "v")})
	notStore := filepath.Join(dir, "notstore")
	if err := os.WriteFile(notStore, bytes.Repeat([]byte("x"), 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst")

	locked := filepath.Join(dir, "live")
	build(t, locked, 1024, nil)
	live, err := store.Open(locked, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no args", nil, "error: too few arguments\n"},
		{"one arg", []string{dst}, "error: too few arguments\n"},
		{"missing source", []string{dst, filepath.Join(dir, "nope")},
			"error: source stat " + filepath.Join(dir, "nope") + ": no such file or directory\n"},
		{"directory source", []string{dst, dir}, "error: source " + dir + " is not a regular file\n"},
		{"source is destination", []string{src, src}, "error: source " + src + " is the destination\n"},
		{"twice", []string{dst, src, src}, "error: source " + src + " is given twice\n"},
		{"not a store", []string{dst, notStore}, "error: opening " + notStore + ": " + store.ErrBadHeader.Error() + "\n"},
		{"empty file", []string{dst, empty}, "error: source " + empty + " is empty, not a kumo store\n"},
		{"locked source", []string{dst, src, locked}, "error: " + locked +
			" is locked: a kumo-server (or another tool) has it open; merge a backup (kumoctl backup) or stop the server first\n"},
		{"locked destination", []string{locked, src}, "error: " + locked +
			" is locked: a kumo-server (or another tool) has it open; merge a backup (kumoctl backup) or stop the server first\n"},
		{"bad destination", []string{notStore, src}, "error: opening " + notStore + ": " + store.ErrBadHeader.Error() + "\n"},
		{"destination dir missing", []string{filepath.Join(dir, "no", "dst"), src},
			"error: " + filepath.Join(dir, "no", "dst") + ": directory " + filepath.Join(dir, "no") + " does not exist\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(tc.args...)
			if code != 1 || errOut != tc.stderr {
				t.Errorf("exit %d, stderr %q, want 1, %q", code, errOut, tc.stderr)
			}
			if strings.HasPrefix(tc.stderr, "error: too few") {
				if !strings.HasPrefix(out, synopsis+"\n") {
					t.Errorf("stdout %q does not start with the usage", out)
				}
			} else if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("destination created by a failed merge: %v", err)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	code, out, errOut := runCmd("-h")
	if code != 0 || !strings.HasPrefix(out, synopsis+"\n") || errOut != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// BenchmarkMerge merges a source of 100,000 records of 100-byte values into
// a new destination; records/s is the figure.
func BenchmarkMerge(b *testing.B) {
	const n = 100000
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	db, err := store.Open(src, &store.Options{Sync: store.SyncNone, Buckets: 2 * n})
	if err != nil {
		b.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 100)
	for i := range n {
		err := db.Put(&store.Record{Key: fmt.Appendf(nil, "key%08d", i), Value: value, Clock: clk(uint64(i), 0)})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dst := filepath.Join(dir, fmt.Sprint("dst", i))
		if err := merge(dst, []string{src}, io.Discard); err != nil {
			b.Fatal(err)
		}
		os.Remove(dst)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
