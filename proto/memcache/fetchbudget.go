package memcache

import "sync"

// The fetch budget. A gateway reaches each server over one connection,
// whose replies arrive in the order the server wrote them, so a small get
// waits behind every large value requested before it. Clients that
// pipeline gets of large values and do not read their replies pull as
// much as their sockets take (tens of megabytes each) before their writes
// block: 200 of them kept a gateway's other clients waiting 9 s for a
// get of a few bytes, where memcached, which serves each connection in
// turn, kept them under 20 ms. So windows of gets (pipelined, multi-key
// and binary, see fetchWindow) that are expected to fetch more than
// fetchFree take their expected bytes from a budget shared by all of a
// Server's connections, Server.MaxFetchBytes, and wait in line while it is
// spent: what is in flight for large values, and so what a small get can
// find ahead of it, stays near that budget. A window is expected to fetch
// what the connection's last window fetched per get, and a connection's
// first window a full item per get (nothing is known of its values yet).
// Windows of small values never touch the budget.

// DefaultMaxFetchBytes is Server.MaxFetchBytes's default.
const DefaultMaxFetchBytes = 16 << 20

// fetchFree is the most a window may be expected to fetch without taking
// from the fetch budget: what windows aim to stay under (see adapt).
const fetchFree = windowBytes

// fetchBudget is a weighted semaphore whose waiters are served in the
// order they came.
type fetchBudget struct {
	mu      sync.Mutex // protects used and waiters
	used    int64
	waiters []fetchWaiter
}

type fetchWaiter struct {
	n     int64
	ready chan struct{} // closed once n is taken for the waiter
}

// acquire takes n (at most limit) from the budget, waiting in line while it
// does not fit, and returns what it took, for release.
func (b *fetchBudget) acquire(n, limit int64) int64 {
	n = min(n, limit)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= limit {
		b.used += n
		b.mu.Unlock()
		return n
	}
	w := fetchWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	<-w.ready
	return n
}

// release gives back n taken by acquire and lets in the waiters that now
// fit, first come first.
func (b *fetchBudget) release(n, limit int64) {
	b.mu.Lock()
	b.used -= n
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= limit {
		w := b.waiters[0]
		b.waiters[0] = fetchWaiter{}
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
	if len(b.waiters) == 0 {
		b.waiters = nil // let a long line's array go
	}
	b.mu.Unlock()
}

// waiting returns how many windows wait for the budget.
func (b *fetchBudget) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiters)
}

func (s *Server) maxFetch() int64 {
	if s.MaxFetchBytes != 0 {
		return s.MaxFetchBytes
	}
	return DefaultMaxFetchBytes
}

// fetchCost returns what the window of m with gets gets is expected to
// fetch: the value bytes per get of the connection's last window with gets,
// or a full item per get before it had one.
func (c *conn) fetchCost(m *getMany, gets int) int64 {
	per := int64(m.perGet)
	if !m.known {
		per = int64(c.s.maxItem())
	}
	return per * int64(gets)
}

// takeFetch takes what a window with gets gets is expected to fetch from
// the budget, if that is over fetchFree and the server has a budget, and
// returns what it took (0: nothing), for giveFetch.
func (c *conn) takeFetch(m *getMany, gets int) int64 {
	limit := c.s.maxFetch()
	if gets == 0 || limit < 0 {
		return 0
	}
	cost := c.fetchCost(m, gets)
	if cost <= fetchFree {
		return 0
	}
	return c.s.fetch.acquire(cost, limit)
}

// giveFetch gives back what takeFetch took.
func (c *conn) giveFetch(n int64) {
	if n > 0 {
		c.s.fetch.release(n, c.s.maxFetch())
	}
}
