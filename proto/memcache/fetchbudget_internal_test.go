package memcache

import (
	"testing"
	"time"
)

// TestFetchBudget: acquire takes what fits at once, later comers wait in
// line even when they would fit (no overtaking), a release lets in the
// waiters that now fit in order, and a request over the limit takes the
// whole limit.
func TestFetchBudget(t *testing.T) {
	var b fetchBudget
	const limit = 10
	if got := b.acquire(6, limit); got != 6 {
		t.Fatalf("acquire(6) = %d", got)
	}
	order := make(chan int64, 3)
	start := func(n int64) {
		want := b.waiting() + 1
		go func() { order <- b.acquire(n, limit) }()
		deadline := time.Now().Add(10 * time.Second)
		for b.waiting() != want {
			if time.Now().After(deadline) {
				t.Fatalf("acquire(%d) did not wait", n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	start(8)  // does not fit: waits
	start(2)  // would fit, but waits behind 8
	start(99) // over the limit: waits for all of it
	if b.used != 6 {
		t.Fatalf("used %d while three wait, want 6", b.used)
	}
	b.release(6, limit) // lets in 8 and 2, in that order; 99 waits
	if x, y := <-order, <-order; x+y != 10 || x != 8 && x != 2 {
		t.Fatalf("after the release %d and %d got in, want 8 and 2", x, y)
	}
	if b.used != 10 || b.waiting() != 1 {
		t.Fatalf("used %d, %d waiting; want 10, 1", b.used, b.waiting())
	}
	b.release(8, limit)
	b.release(2, limit)
	if got := <-order; got != limit {
		t.Fatalf("a request over the limit took %d, want %d", got, limit)
	}
	b.release(limit, limit)
	if b.used != 0 || b.waiting() != 0 || b.waiters != nil {
		t.Fatalf("after every release: used %d, waiters %v", b.used, b.waiters)
	}
}
