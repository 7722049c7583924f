package memcache_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// heldBackend is an AsyncBackend whose gets complete only when the test
// lets them (release): what a gateway's gets are while their values are
// on the way.
type heldBackend struct {
	*memtest.Backend
	mu      sync.Mutex // protects held, started, freed
	held    []func()
	started int
	freed   bool // gets complete at once
}

func (h *heldBackend) GetAsync(key []byte, withCAS bool, done func(*memcache.Item, error)) bool {
	k := append([]byte(nil), key...)
	get := func() {
		var it memcache.Item
		err := h.Backend.Get(context.Background(), k, nil, &it)
		done(&it, err)
	}
	h.mu.Lock()
	h.started++
	freed := h.freed
	if !freed {
		h.held = append(h.held, get)
	}
	h.mu.Unlock()
	if freed {
		get()
	}
	return true
}

func (h *heldBackend) SetAsync(*memcache.Item, func(uint64, error)) bool { return false }

func (h *heldBackend) startedGets() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started
}

// release completes the gets started so far.
func (h *heldBackend) release() {
	h.mu.Lock()
	held := h.held
	h.held = nil
	h.mu.Unlock()
	for _, f := range held {
		f()
	}
}

// free completes the held gets and every later one at once.
func (h *heldBackend) free() {
	h.mu.Lock()
	h.freed = true
	h.mu.Unlock()
	h.release()
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFetchBudgetWindows: windows of pipelined gets expected to fetch large
// values share the server's fetch budget. A connection's first window is
// expected to fetch a full item per get; while one such window is in
// flight and the budget holds no second, the next connection's window
// waits, and starts once the first one's values arrived. A connection
// whose last window fetched small values does not wait for the budget at
// all, and every reply is right.
func TestFetchBudgetWindows(t *testing.T) {
	const item = 1 << 20
	mt := memtest.New(time.Now)
	hb := &heldBackend{Backend: mt}
	s := &memcache.Server{Backend: hb, MaxItemSize: item, MaxFetchBytes: 3 * item, NoEventLoop: true, Logf: t.Logf}
	addr := memtest.StartServer(t, s)
	t.Cleanup(hb.free) // before the server's end, which waits for held gets
	big := bytes.Repeat([]byte("b"), 600<<10)
	for _, kv := range []struct {
		k string
		v []byte
	}{{"a1", big}, {"a2", big}, {"b1", big}, {"b2", big}, {"s1", []byte("x")}, {"s2", []byte("yy")}} {
		it := memcache.Item{Key: []byte(kv.k), Value: kv.v}
		if _, err := mt.Store(context.Background(), memcache.ModeSet, &it); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(r *bufio.Reader, key string, n int) {
		t.Helper()
		line, err := r.ReadString('\n')
		if want := fmt.Sprintf("VALUE %s 0 %d\r\n", key, n); err != nil || line != want {
			t.Fatalf("got %q, %v; want %q", line, err, want)
		}
		if _, err := r.Discard(n + 2); err != nil {
			t.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "END\r\n" {
			t.Fatalf("got %q, %v; want END", line, err)
		}
	}

	// A small-valued connection first, so that its later windows are known
	// to be small: its first window takes 2 items of the budget.
	cs, rs := dialT(t, addr)
	fmt.Fprintf(cs, "get s1\r\nget s2\r\n")
	waitCond(t, "the small connection's first gets", func() bool { return hb.startedGets() == 2 })
	if got := memcache.FetchUsed(s); got != 2*item {
		t.Fatalf("a first window of 2 gets took %d of the budget, want %d", got, 2*item)
	}
	hb.release()
	expect(rs, "s1", 1)
	expect(rs, "s2", 2)
	waitCond(t, "the budget given back", func() bool { return memcache.FetchUsed(s) == 0 })

	// Connection a's first window takes 2 of the 3 items; b's must wait.
	ca, ra := dialT(t, addr)
	fmt.Fprintf(ca, "get a1\r\nget a2\r\n")
	waitCond(t, "a's gets", func() bool { return hb.startedGets() == 4 })
	cb, rb := dialT(t, addr)
	fmt.Fprintf(cb, "get b1\r\nget b2\r\n")
	waitCond(t, "b waiting for the budget", func() bool { return memcache.FetchWaiting(s) == 1 })
	if got := hb.startedGets(); got != 4 {
		t.Fatalf("%d gets started while b waits, want 4", got)
	}

	// The small connection's next window does not wait behind b.
	fmt.Fprintf(cs, "get s2\r\nget s1\r\n")
	waitCond(t, "the small window", func() bool { return hb.startedGets() == 6 })
	if got := memcache.FetchWaiting(s); got != 1 {
		t.Fatalf("%d windows wait, want b's only", got)
	}

	hb.release() // a's and the small window's values arrive: b starts
	expect(ra, "a1", len(big))
	expect(ra, "a2", len(big))
	expect(rs, "s2", 2)
	expect(rs, "s1", 1)
	waitCond(t, "b's gets", func() bool { return hb.startedGets() == 8 })
	hb.release()
	expect(rb, "b1", len(big))
	expect(rb, "b2", len(big))

	// a's next window is expected to fetch what its last one did per get
	// (600 KiB): 2 of them fit beside nothing else.
	fmt.Fprintf(ca, "get a2\r\nget a1\r\n")
	waitCond(t, "a's second window", func() bool { return hb.startedGets() == 10 })
	if got, want := memcache.FetchUsed(s), int64(2*len(big)); got != want {
		t.Fatalf("a's second window took %d, want %d", got, want)
	}
	hb.release()
	expect(ra, "a2", len(big))
	expect(ra, "a1", len(big))
	waitCond(t, "the budget given back", func() bool { return memcache.FetchUsed(s) == 0 })
}
