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

// Ensure that a break shorter than the garbage time continues the stint
// StatCurrentSince reports, in the process and across a restart (the
// current file), and that a longer one, or a store found away, starts a
// new one. A rolling restart of the other servers used to make a
// long-away server find no one current since it left (hunt 26a).
func TestShortBreakKeepsCurrentSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.kch")
	s, _ := startWith(t, Config{Self: testSelf, Listen: "127.0.0.1:0", StorePath: path, GarbageMax: time.Hour})
	active := ring.New([]ring.Node{{Addr: testSelf, Active: true}}, s.clk.Now())
	fault := ring.New([]ring.Node{{Addr: testSelf, Active: false}}, s.clk.Now())
	s.markCurrent()
	stint := s.currentSince.Load()
	if stint == 0 {
		t.Fatal("not current")
	}
	s.rhs.Store(fault) // marked fault, then attached and copied again
	s.markCurrent()
	if got := s.currentSince.Load(); got != 0 {
		t.Fatalf("current since %d while not a reader", got)
	}
	s.rhs.Store(active)
	s.markCurrent()
	if got := s.currentSince.Load(); got != stint {
		t.Fatalf("after a short break: current since %d, want the stint's %d", got, stint)
	}

	// Across a restart: the current file carries the stint.
	putRecords(t, s, s.clk.Now(), "k") // an empty store is new at every start
	s.markCurrent()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, _ := startWith(t, Config{Self: testSelf, Listen: "127.0.0.1:0", StorePath: path, GarbageMax: time.Hour})
	s2.markCurrent()
	if got := s2.currentSince.Load(); got != stint {
		t.Fatalf("after a restart: current since %d, want the stint's %d", got, stint)
	}

	// A break longer than the garbage time starts a new stint.
	s2.rhs.Store(fault)
	s2.markCurrent()
	s2.lastCurrent.Store(time.Now().Add(-2 * time.Hour).UnixNano())
	s2.rhs.Store(active)
	before := time.Now().UnixNano()
	s2.markCurrent()
	if got := s2.currentSince.Load(); got < before {
		t.Fatalf("after a long break: current since %d, want a new stint from %d", got, before)
	}

	// So does a store found away.
	s2.rhs.Store(fault)
	s2.markCurrent()
	s2.setAway()
	s2.endPurgeNotes()
	s2.awayLong.Store(false)
	s2.rhs.Store(active)
	before = time.Now().UnixNano()
	s2.markCurrent()
	if got := s2.currentSince.Load(); got < before {
		t.Fatalf("after being away: current since %d, want a new stint from %d", got, before)
	}
}

// Ensure that StatCurrentSince reports the stint also during a break
// shorter than the garbage time (the managers' confirmation lags while
// another server is attached, or its own copy runs after a restart), with
// StatCurrentUntil the break's start, and 0 after a longer break or once
// the store was found away; and that StatCurrentUntil is now while it is
// current.
func TestStintSinceDuringShortBreak(t *testing.T) {
	s, _ := startWith(t, Config{Self: testSelf, Listen: "127.0.0.1:0", StorePath: filepath.Join(t.TempDir(), "s.kch"), GarbageMax: time.Hour})
	s.markCurrent()
	stint := s.currentSince.Load()
	now := time.Now()
	if got := s.currentUntil(now); got != now.UnixNano() {
		t.Fatalf("current: until %d, want now %d", got, now.UnixNano())
	}
	s.rhs.Store(ring.New([]ring.Node{{Addr: testSelf, Active: false}}, s.clk.Now())) // its copy runs
	s.markCurrent()
	breakAt := s.lastCurrent.Load()
	if got := s.stintSince(time.Now()); got != stint {
		t.Fatalf("in a short break: since %d, want its stint %d", got, stint)
	}
	if got := s.currentUntil(time.Now()); got != breakAt {
		t.Fatalf("in a short break: until %d, want the break's start %d", got, breakAt)
	}
	if got := s.stintSince(time.Now().Add(2 * time.Hour)); got != 0 {
		t.Fatalf("after a break longer than the garbage time: %d, want 0", got)
	}
	// A stint begun after an incomplete copy reports its start later by the
	// purge's slack.
	s.stintPartial.Store(true)
	if got, want := s.stintSince(time.Now()), stint+int64(stintSlack(s.maintenanceTick())); got != want {
		t.Fatalf("a stint begun incomplete: since %d, want %d", got, want)
	}
	s.stintPartial.Store(false)
	s.setAway()
	s.endPurgeNotes()
	if got := s.stintSince(time.Now()); got != 0 {
		t.Fatalf("an away store reports %d, want 0", got)
	}
}
