package logging

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var fixed = time.Date(2026, 11, 25, 19, 20, 0, 123456789, time.Local)

func newBuf(level Level) (*Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	l := New(&buf, level)
	l.SetClock(func() time.Time { return fixed })
	return l, &buf
}

func TestFormat(t *testing.T) {
	l, buf := newBuf(Debug)
	m := l.With("manager")
	m.Infof("new node %s", "127.0.0.1:19801")
	m.Warnf("lost node %d", 3)
	m.Errorf("oops")
	m.Debugf("trace %v", true)
	l.Infof("no component")
	m.Infof("two\nlines\r\n")
	m.Log(Level(42), "odd level")
	m.Logf("via Logf")
	m.Func(Warn)("via Func %d", 7)
	want := `2026-11-25 19:20:00.123 INFO  manager: new node 127.0.0.1:19801
2026-11-25 19:20:00.123 WARN  manager: lost node 3
2026-11-25 19:20:00.123 ERROR manager: oops
2026-11-25 19:20:00.123 DEBUG manager: trace true
2026-11-25 19:20:00.123 INFO  no component
2026-11-25 19:20:00.123 INFO  manager: two\nlines\r
2026-11-25 19:20:00.123 ERROR manager: odd level
2026-11-25 19:20:00.123 INFO  manager: via Logf
2026-11-25 19:20:00.123 WARN  manager: via Func 7
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestLevels(t *testing.T) {
	l, buf := newBuf(Warn)
	l.Debugf("d")
	l.Infof("i")
	l.Warnf("w")
	l.Errorf("e")
	if got := buf.String(); strings.Count(got, "\n") != 2 || !strings.Contains(got, "WARN  w") || !strings.Contains(got, "ERROR e") {
		t.Errorf("level Warn wrote:\n%s", got)
	}
	c := l.With("x")
	c.SetLevel(Debug) // shared with the parent
	l.Debugf("now")
	if !strings.HasSuffix(buf.String(), "DEBUG now\n") || l.Level() != Debug || !l.Enabled(Debug) {
		t.Errorf("SetLevel on a child did not reach the parent:\n%s", buf.String())
	}
	for lv, name := range map[Level]string{Debug: "DEBUG", Info: "INFO", Warn: "WARN", Error: "ERROR", 9: "Level(9)"} {
		if lv.String() != name {
			t.Errorf("Level(%d).String() = %q", lv, lv.String())
		}
	}
	Discard.Errorf("nothing")
}

func TestSetup(t *testing.T) {
	for _, tc := range []struct {
		path    string
		verbose bool
		level   Level
	}{
		{"", false, Info},
		{"-", true, Debug},
		{filepath.Join(t.TempDir(), "x.log"), false, Info},
	} {
		l, err := Setup(tc.path, tc.verbose)
		if err != nil || l.Level() != tc.level {
			t.Errorf("Setup(%q, %v) = level %v, %v", tc.path, tc.verbose, l.Level(), err)
			continue
		}
		l.Close()
	}
	if _, err := Setup(filepath.Join(t.TempDir(), "no", "such", "dir.log"), false); err == nil {
		t.Error("Setup in a missing directory succeeded")
	}
}

// TestReopenAfterRename is what logrotate does: rename the file, send
// SIGHUP (Reopen), and expect new lines in a new file at the old path.
func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.log")
	if err := os.WriteFile(path, []byte("old line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Info)
	if err != nil {
		t.Fatal(err)
	}
	l.SetClock(func() time.Time { return fixed })
	l.Infof("before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.Infof("after rename")
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Infof("after reopen")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Infof("after close") // dropped, no panic

	rotated, _ := os.ReadFile(path + ".1")
	current, _ := os.ReadFile(path)
	if want := "old line\n2026-11-25 19:20:00.123 INFO  before\n2026-11-25 19:20:00.123 INFO  after rename\n"; string(rotated) != want {
		t.Errorf("rotated file:\n%s", rotated)
	}
	if want := "2026-11-25 19:20:00.123 INFO  after reopen\n"; string(current) != want {
		t.Errorf("new file:\n%s", current)
	}
}

func TestReopenErrors(t *testing.T) {
	l, _ := newBuf(Info)
	if err := l.Reopen(); !errors.Is(err, ErrNoFile) {
		t.Errorf("Reopen without a file: %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "x.log")
	os.Mkdir(filepath.Dir(path), 0o755)
	f, err := Open(path, Info)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	os.RemoveAll(filepath.Dir(path))
	if err := f.Reopen(); err == nil {
		t.Error("Reopen into a removed directory succeeded")
	}
	f.Infof("still works") // keeps the old descriptor
}

// TestConcurrent: lines from many goroutines never interleave.
func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	l, err := Open(path, Debug)
	if err != nil {
		t.Fatal(err)
	}
	const workers, per = 4, 200
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := l.With("w")
			for i := range per {
				c.Infof("worker %d line %d %s", g, i, strings.Repeat("x", 100))
				if g == 0 && i%50 == 0 {
					if err := l.Reopen(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	l.Close()
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != workers*per {
		t.Fatalf("%d lines, want %d", len(lines), workers*per)
	}
	for _, ln := range lines {
		if !strings.Contains(ln, " INFO  w: worker ") || !strings.HasSuffix(ln, strings.Repeat("x", 100)) {
			t.Fatalf("mangled line %q", ln)
		}
	}
}

func BenchmarkInfof(b *testing.B) {
	l := New(discardWriter{}, Info).With("gateway")
	b.ReportAllocs()
	for b.Loop() {
		l.Infof("new node %s", "127.0.0.1:19801")
	}
}

func BenchmarkDebugfFiltered(b *testing.B) {
	l := New(discardWriter{}, Info)
	b.ReportAllocs()
	for b.Loop() {
		l.Debugf("x %d", 1)
	}
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
