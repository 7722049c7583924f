package memcache

import (
	"sync"
	"sync/atomic"
	"time"
)

// defaultBodyWait is how long a large request body waits for room in the
// budget of request bodies (maxBodies) before it is refused.
const defaultBodyWait = 2 * time.Second

// bodyWaiters is where connections wait for room among the large request
// bodies. Every release wakes all waiters, which retry: there are waiters
// only while the budget is full, and each holds only its request line.
type bodyWaiters struct {
	n     atomic.Int32  // waiters; releases skip the lock while there are none
	mu    sync.Mutex    // protects freed
	freed chan struct{} // closed, and replaced, when bodies are given back
}

// bodiesFreed wakes the connections waiting for room among the bodies.
func (s *Server) bodiesFreed() {
	w := &s.bodyWait
	if w.n.Load() == 0 {
		return
	}
	w.mu.Lock()
	if w.freed != nil {
		close(w.freed)
		w.freed = nil
	}
	w.mu.Unlock()
}

// waitBodies retries c.tryInBuf(n) whenever bodies are given back, until
// it succeeds (the buffer), the body wait passes or the server closes
// (nil).
func (s *Server) waitBodies(c *conn, n int) []byte {
	wait := s.bodyWaitFor
	if wait == 0 {
		wait = defaultBodyWait
	}
	if wait < 0 {
		return nil
	}
	w := &s.bodyWait
	w.n.Add(1)
	defer w.n.Add(-1)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		w.mu.Lock()
		if w.freed == nil {
			w.freed = make(chan struct{})
		}
		ch := w.freed
		w.mu.Unlock()
		// A release between the failed try and taking ch closed an
		// older channel: try again before waiting on this one.
		if b := c.tryInBuf(n); b != nil {
			return b
		}
		select {
		case <-ch:
		case <-t.C:
			return nil
		case <-s.ctx.Done():
			return nil
		}
	}
}
