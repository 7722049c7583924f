package clock

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeWall is an injectable wall clock.
type fakeWall struct{ sec atomic.Int64 }

func (f *fakeWall) now() time.Time { return time.Unix(f.sec.Load(), 0) }

func newFake(sec int64, o Options) (*Clock, *fakeWall) {
	f := &fakeWall{}
	f.sec.Store(sec)
	o.Wall = f.now
	return New(o), f
}

func TestLayout(t *testing.T) {
	ct := Make(1795628856, 7)
	if ct != 1795628856<<32|7 || Seconds(ct) != 1795628856 || Counter(ct) != 7 {
		t.Fatalf("Make/Seconds/Counter: %#x", ct)
	}
	if !Time(ct).Equal(time.Unix(1795628856, 0)) {
		t.Fatal("Time")
	}
}

func TestNowSequence(t *testing.T) {
	c, w := newFake(1000, Options{})
	if got := c.Current(); got != Make(1000, 0) {
		t.Fatalf("Current at start = %#x", got)
	}
	steps := []struct {
		wall int64
		want uint64
	}{
		{1000, Make(1000, 1)},
		{1000, Make(1000, 2)},
		{1001, Make(1001, 0)}, // seconds advance: counter resets
		{1001, Make(1001, 1)},
		{999, Make(1001, 2)}, // wall clock goes backwards: keep counting
		{500, Make(1001, 3)},
		{1005, Make(1005, 0)},
	}
	for i, s := range steps {
		w.sec.Store(s.wall)
		if got := c.Now(); got != s.want {
			t.Fatalf("step %d: Now = (%d,%d), want (%d,%d)", i, Seconds(got), Counter(got), Seconds(s.want), Counter(s.want))
		}
		if c.Current() != s.want {
			t.Fatalf("step %d: Current differs from last Now", i)
		}
	}
}

func TestCounterOverflow(t *testing.T) {
	c, _ := newFake(1000, Options{})
	if err := c.Observe(Make(1000, 1<<32-2)); err != nil {
		t.Fatal(err)
	}
	if got := c.Now(); got != Make(1000, 1<<32-1) {
		t.Fatalf("Now = %#x", got)
	}
	if got := c.Now(); got != Make(1001, 0) {
		t.Fatalf("after overflow Now = (%d,%d), want (1001,0)", Seconds(got), Counter(got))
	}
}

func TestObserve(t *testing.T) {
	c, w := newFake(1000, Options{})
	// A peer 60 s ahead: our next versions must be newer than its.
	peer := Make(1060, 5)
	if err := c.Observe(peer); err != nil {
		t.Fatal(err)
	}
	if got := c.Now(); got != Make(1060, 6) {
		t.Fatalf("Now after Observe = (%d,%d)", Seconds(got), Counter(got))
	}
	// An older peer clock changes nothing.
	if err := c.Observe(Make(1001, 9)); err != nil || c.Current() != Make(1060, 6) {
		t.Fatalf("older peer: %v %#x", err, c.Current())
	}
	// Our wall clock catches up.
	w.sec.Store(1061)
	if got := c.Now(); got != Make(1061, 0) {
		t.Fatalf("Now = (%d,%d)", Seconds(got), Counter(got))
	}
}

func TestObserveLamport(t *testing.T) {
	c, _ := newFake(1000, Options{})
	c.Now() // (1000,1)
	if err := c.Observe(40); err != nil {
		t.Fatal(err)
	}
	if c.Current() != Make(1000, 40) {
		t.Fatalf("Current = (%d,%d), want (1000,40)", Seconds(c.Current()), Counter(c.Current()))
	}
	if got := c.Now(); got != Make(1000, 41) {
		t.Fatalf("Now = (%d,%d)", Seconds(got), Counter(got))
	}
	if err := c.Observe(3); err != nil || c.Current() != Make(1000, 41) {
		t.Fatal("smaller Lamport clock went backwards")
	}
}

func TestObserveMaxAhead(t *testing.T) {
	c, _ := newFake(1000, Options{MaxAhead: time.Minute})
	if err := c.Observe(Make(1060, 0)); err != nil {
		t.Fatalf("60 s ahead: %v", err)
	}
	if err := c.Observe(Make(1061, 0)); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("61 s ahead: %v", err)
	}
	if c.Current() != Make(1060, 0) {
		t.Fatalf("refused clock merged: %#x", c.Current())
	}
	u, _ := newFake(1000, Options{})
	if err := u.Observe(^uint64(0)); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("reserved seconds: %v", err)
	}
}

func TestOffset(t *testing.T) {
	c, _ := newFake(1000, Options{Offset: -90 * time.Second})
	if got := c.Now(); got != Make(910, 1) {
		t.Fatalf("Now with -90s = (%d,%d)", Seconds(got), Counter(got))
	}
	// Clamped at both ends of the 32-bit field.
	lo, _ := newFake(10, Options{Offset: -time.Hour})
	if Seconds(lo.Current()) != 0 {
		t.Fatal("negative seconds not clamped")
	}
}

func TestOffsetFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want time.Duration
		err  bool
	}{
		{"", 0, false},
		{"-90s", -90 * time.Second, false},
		{"2m", 2 * time.Minute, false},
		{"90", 0, true},
		{"soon", 0, true},
	} {
		t.Setenv(OffsetEnv, tc.env)
		d, err := OffsetFromEnv()
		if d != tc.want || (err != nil) != tc.err || (err != nil && !errors.Is(err, ErrBadOffset)) {
			t.Errorf("%q: %v, %v", tc.env, d, err)
		}
	}
}

// TestConcurrent: under concurrent Now and Observe, every issued ClockTime
// is unique and each goroutine sees its own strictly increasing.
func TestConcurrent(t *testing.T) {
	c, w := newFake(1000, Options{})
	const workers, per = 4, 5000
	n := per
	if testing.Short() {
		n = 500
	}
	results := make([][]uint64, workers)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]uint64, 0, n)
			for i := range n {
				switch {
				case g == 0 && i%100 == 0:
					w.sec.Add(1) // wall clock moves
				case g == 1 && i%50 == 0:
					c.Observe(c.Current() + 3)
				case g == 2 && i%70 == 0:
					c.Observe(uint64(i)) // Lamport
				}
				out = append(out, c.Now())
			}
			results[g] = out
		}()
	}
	wg.Wait()
	seen := make(map[uint64]bool, workers*n)
	for g, out := range results {
		for i, v := range out {
			if i > 0 && v <= out[i-1] {
				t.Fatalf("goroutine %d: %#x after %#x", g, v, out[i-1])
			}
			if seen[v] {
				t.Fatalf("ClockTime %#x issued twice", v)
			}
			seen[v] = true
		}
	}
}

func TestRealWallClock(t *testing.T) {
	c := New(Options{})
	before := uint32(time.Now().Unix())
	got := c.Now()
	if s := Seconds(got); s < before || s > before+2 {
		t.Fatalf("Now seconds %d, wall %d", s, before)
	}
}

func BenchmarkNow(b *testing.B) {
	c := New(Options{})
	b.ReportAllocs()
	for b.Loop() {
		c.Now()
	}
}

func BenchmarkNowParallel(b *testing.B) {
	c := New(Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Now()
		}
	})
}

func BenchmarkObserve(b *testing.B) {
	c := New(Options{})
	ct := c.Current()
	b.ReportAllocs()
	for b.Loop() {
		c.Observe(ct)
	}
}

// Ensure that a far-future peer clock (the year 2101) is refused under
// DefaultMaxAhead while skews of seconds and minutes are merged, and that
// each peer's refusals are reported once, then at most once per
// RefusedEvery with the number held back.
func TestObserveFromRefusedReports(t *testing.T) {
	type report struct {
		peer string
		ct   uint64
		n    uint64
	}
	var got []report
	c, w := newFake(1_800_000_000, Options{
		MaxAhead:     DefaultMaxAhead,
		RefusedEvery: time.Minute,
		Refused: func(peer string, ct uint64, err error, n uint64) {
			if !errors.Is(err, ErrTooFarAhead) {
				t.Errorf("Refused with %v", err)
			}
			got = append(got, report{peer, ct, n})
		},
	})
	y2101 := Make(4_133_980_800, 5) // 2101-01-01
	steps := []struct {
		peer    string
		ct      uint64
		advance int64 // seconds the wall clock moves first
		refused bool
		current uint64 // Current afterwards
	}{
		{"a", Make(1_800_000_003, 1), 0, false, Make(1_800_000_003, 1)}, // seconds ahead
		{"a", Make(1_800_000_300, 0), 0, false, Make(1_800_000_300, 0)}, // 5 minutes ahead
		{"a", Make(1_800_000_600, 0), 0, false, Make(1_800_000_600, 0)}, // exactly the limit
		{"a", y2101, 0, true, Make(1_800_000_600, 0)},                   // reported (n 1)
		{"a", y2101, 10, true, Make(1_800_000_600, 0)},                  // held back
		{"b", Make(1_800_000_611, 0), 0, true, Make(1_800_000_600, 0)},  // another peer: reported
		{"a", Make(1_800_000_700, 0), 20, true, Make(1_800_000_600, 0)}, // held back
		{"a", y2101, 30, true, Make(1_800_000_600, 0)},                  // a minute later: n 3
		{"a", Make(1_800_000_650, 0), 0, false, Make(1_800_000_650, 0)}, // sane again
		{"", Make(counterMask, 0), 0, true, Make(1_800_000_650, 0)},     // reserved
		{"", 12, 0, false, Make(1_800_000_650, 12)},                     // kumofs Lamport
	}
	for i, s := range steps {
		w.sec.Add(s.advance)
		err := c.ObserveFrom(Name(s.peer), s.ct)
		if s.refused != errors.Is(err, ErrTooFarAhead) {
			t.Fatalf("step %d: ObserveFrom(%q, %#x) = %v", i, s.peer, s.ct, err)
		}
		if c.Current() != s.current {
			t.Fatalf("step %d: Current = (%d,%d), want (%d,%d)", i,
				Seconds(c.Current()), Counter(c.Current()), Seconds(s.current), Counter(s.current))
		}
	}
	want := []report{{"a", y2101, 1}, {"b", Make(1_800_000_611, 0), 1}, {"a", y2101, 3}, {"", Make(counterMask, 0), 1}}
	if len(got) != len(want) {
		t.Fatalf("reports %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("report %d = %v, want %v", i, got[i], want[i])
		}
	}
	if c.Refused() != 6 {
		t.Fatalf("Refused() = %d, want 6", c.Refused())
	}
}

// Ensure that Advance merges a stored version's clock however far ahead it
// is, so that the next version of that key is newer.
func TestAdvance(t *testing.T) {
	c, _ := newFake(1000, Options{MaxAhead: time.Minute})
	stored := Make(5000, 7)
	if err := c.Observe(stored); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("Observe: %v", err)
	}
	c.Advance(stored)
	if got := c.Now(); got != Make(5000, 8) {
		t.Fatalf("Now after Advance = (%d,%d)", Seconds(got), Counter(got))
	}
	c.Advance(Make(10, 0)) // older: no effect
	if got := c.Now(); got != Make(5000, 9) {
		t.Fatalf("Now = (%d,%d)", Seconds(got), Counter(got))
	}
	c.Advance(^uint64(0)) // reserved: capped below the year 2106
	if got := c.Now(); got != Make(counterMask, 0) {
		t.Fatalf("Now after reserved = %#x", got)
	}
}
