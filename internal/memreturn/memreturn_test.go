package memreturn

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	const slack = 32 << 20
	base := Sample{GCs: 7, Objects: 20 << 20, Live: 18 << 20, HeapFree: 1 << 20}
	for _, tc := range []struct {
		name string
		cur  Sample
		want bool
	}{
		{"quiet, little held", base, false},
		{"quiet, garbage over slack", Sample{GCs: 7, Objects: 60 << 20, Live: 18 << 20}, true},
		{"quiet, free heap over slack", Sample{GCs: 7, Objects: 18 << 20, Live: 18 << 20, HeapFree: 40 << 20}, true},
		{"quiet, both together over slack", Sample{GCs: 7, Objects: 38 << 20, Live: 18 << 20, HeapFree: 15 << 20}, true},
		{"exactly slack", Sample{GCs: 7, Objects: 18 << 20, Live: 18 << 20, HeapFree: slack}, false},
		{"a collection ran", Sample{GCs: 8, Objects: 60 << 20, Live: 18 << 20, HeapFree: 40 << 20}, false},
		{"large live heap, held under a quarter", Sample{GCs: 7, Objects: 440 << 20, Live: 400 << 20, HeapFree: 50 << 20}, false},
		{"large live heap, held over a quarter", Sample{GCs: 7, Objects: 480 << 20, Live: 400 << 20, HeapFree: 30 << 20}, true},
		{"live above objects (swept since)", Sample{GCs: 7, Objects: 10 << 20, Live: 18 << 20}, false},
	} {
		if got := Due(base, tc.cur, slack); got != tc.want {
			t.Errorf("%s: Due = %v, want %v (held %d)", tc.name, got, tc.want, tc.cur.Held())
		}
	}
}

// TestRun: a quiet process that holds too much is freed once, the check
// after the return starts afresh, and a busy one (collections between
// checks) is left alone.
func TestRun(t *testing.T) {
	var mu sync.Mutex // protects s, frees
	s := Sample{GCs: 1, Objects: 10 << 20, Live: 10 << 20}
	frees := 0
	busy, reads := true, 0
	read := func() Sample {
		mu.Lock()
		defer mu.Unlock()
		reads++
		if busy {
			s.GCs++ // a collection ran since the last check
		}
		return s
	}
	free := func() {
		mu.Lock()
		defer mu.Unlock()
		frees++
		s.GCs += 2
		s.Objects, s.HeapFree = s.Live, 0
	}
	set := func(f func(*Sample)) { mu.Lock(); f(&s); mu.Unlock() }
	// waitChecks waits until Run has read the runtime n more times.
	waitChecks := func(n int) {
		t.Helper()
		mu.Lock()
		until := reads + n
		mu.Unlock()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			r := reads
			mu.Unlock()
			if r >= until {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Run read the runtime %d times in 10 s, want %d more", r, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	freed := func() int { mu.Lock(); defer mu.Unlock(); return frees }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Run(ctx, time.Millisecond, 32<<20, read, free) }()
	defer func() { cancel(); <-done }()

	// A burst that collects on its way (busy): nothing to do.
	set(func(s *Sample) { s.Objects = 90 << 20 })
	waitChecks(20)
	if n := freed(); n != 0 {
		t.Fatalf("%d returns while collections ran", n)
	}
	set(func(s *Sample) { busy = false; s.Objects = 10 << 20; s.HeapFree = 80 << 20 }) // the burst ends: free heap held
	deadline := time.Now().Add(10 * time.Second)
	for freed() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("quiet and holding 80 MiB: not freed")
		}
		time.Sleep(time.Millisecond)
	}
	waitChecks(20) // 20 more checks: nothing more to free
	if n := freed(); n != 1 {
		t.Fatalf("%d returns, want 1", n)
	}
}
