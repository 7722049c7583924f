package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"kumofs/ring"
)

// mtimeAge returns how long ago the file at path was last modified.
func mtimeAge(t *testing.T, path string) time.Duration {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return time.Since(fi.ModTime())
}

// Ensure that a server marks its store current while it is an active
// owner, without any write (openStore measures a restart's absence from
// the mark), and not while the hash space has it fault.
func TestStoreMarkedCurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.kch")
	s, _ := startAlone(t, path)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	// The maintenance loop marks it within its first tick (5 s here).
	deadline := time.Now().Add(10 * time.Second)
	for mtimeAge(t, path) > time.Minute {
		if time.Now().After(deadline) {
			t.Fatalf("store not marked current: modified %v ago", mtimeAge(t, path).Round(time.Second))
		}
		time.Sleep(5 * time.Millisecond)
	}

	s.whs.Store(ring.New([]ring.Node{{Addr: testSelf, Active: false}}, s.clk.Now()))
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	s.markCurrent()
	if age := mtimeAge(t, path); age < 59*time.Minute {
		t.Fatalf("a fault server marked its store current (modified %v ago)", age)
	}
}

// Ensure that a server attached but not yet a reader (active in the write
// space, its replace copy not done) does not count as current, to the
// others' purge (StatCurrentSince 0) nor in its own mark, and that it does
// once the read space has it. The others used to take it as current from
// the attach and, when they came back from a long absence while its copy
// had been cut short, dropped their copies of keys it never received
// (hunt 26a).
func TestAttachedServerCurrentOnlyAsReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.kch")
	s, _ := startAlone(t, path)
	active := ring.New([]ring.Node{{Addr: testSelf, Active: true}}, s.clk.Now())
	fault := ring.New([]ring.Node{{Addr: testSelf, Active: false}}, s.clk.Now())
	s.whs.Store(active)
	s.rhs.Store(fault)
	s.currentSince.Store(0)
	s.markCurrent()
	if got := s.currentSince.Load(); got != 0 {
		t.Fatalf("a writer that is not a reader is current since %v", time.Unix(0, got))
	}
	s.rhs.Store(active)
	before := time.Now()
	s.markCurrent()
	if got := s.currentSince.Load(); got < before.UnixNano() {
		t.Fatalf("a reader and writer: current since %d, want from %d", got, before.UnixNano())
	}
}
