package memcache

import (
	"net"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Stalled replies. memcached hands a client references to its items, so a
// client that sends gets and never reads its replies costs it almost
// nothing; a kumo gateway holds a copy of every value it is writing, so
// hundreds of such clients asking for 1 MB values would hold hundreds of
// megabytes. A write that the socket does not take at once registers as
// stalled with the bytes its connection holds, and so does the read of a
// large value whose bytes have not all arrived (a client that starts 1 MB
// sets and never finishes them holds the buffers they need); while the stalled bytes of
// all connections exceed Server.MaxStalledBytes, a watchdog cuts the
// connections stalled longest (at least stallAge), oldest first, until
// they fit: it sets a past deadline, so the blocked write (or read) fails and
// the connection's owner closes it and frees what it held. Clients that
// read, however slowly, are cut only while the server is over its limit
// and they have been waiting longest.

// DefaultMaxStalledBytes is Server.MaxStalledBytes's default.
const DefaultMaxStalledBytes = 64 << 20

// defaultStallAge is how long a write must have been blocked before the
// watchdog may cut its connection.
const defaultStallAge = 2 * time.Second

// freeEvery is the least time between two returns of freed memory to the
// operating system after cuts.
const freeEvery = 10 * time.Second

// burstBodies is how much the large request bodies of all connections
// must have held at once for their end to return memory to the system:
// the bodies, and the copies a gateway makes to send each value to its
// servers, are garbage afterwards, and a runtime that no longer allocates
// much would collect it only after minutes (its next collection is due
// when the heap doubles the burst's, or at the two-minute forced one).
const burstBodies = 64 << 20

func (s *Server) burstLimit() int64 {
	if s.burstBodies > 0 {
		return s.burstBodies
	}
	return burstBodies
}

// endBurst has the watchdog return freed memory to the system once a burst
// of large request bodies is over (bodyBytes back to 0), as after cuts: at
// most every freeEvery, stallAge after the burst's end.
func (s *Server) endBurst() {
	ss := &s.stalls
	ss.mu.Lock()
	ss.toFree, ss.cutAt = true, time.Now()
	start := !ss.watching
	ss.watching = true
	ss.mu.Unlock()
	if start {
		s.startWatchdog()
	}
}

// stall is one blocked write, or one read of a request body that waits.
type stall struct {
	nc    net.Conn
	n     int64     // bytes its connection holds
	since time.Time // when the write blocked
	cut   bool      // the watchdog set its deadline
}

// stallSet is a Server's stalled writes and body reads.
type stallSet struct {
	mu       sync.Mutex // protects the fields below
	m        map[*stall]struct{}
	bytes    int64     // sum of n over m
	watching bool      // the watchdog goroutine runs
	freed    time.Time // last return of memory to the OS
	toFree   bool      // connections were cut (or a burst ended) since then
	frees    uint64    // returns of memory to the OS, ever
	cutAt    time.Time // when connections were cut last
	cuts     uint64    // connections cut, ever

	// over is whether bytes exceeds the limit now: new get windows then
	// take one key at a time (conn.windowSize), so that connections
	// arriving during an attack add as little as they can.
	over atomic.Bool
}

func (s *Server) maxStalled() int64 {
	if s.MaxStalledBytes == 0 {
		return DefaultMaxStalledBytes
	}
	return s.MaxStalledBytes
}

func (s *Server) age() time.Duration {
	if s.stallAge > 0 {
		return s.stallAge
	}
	return defaultStallAge
}

// writeStalled writes b (the rest of a reply that the socket did not take
// at once) with write, which blocks, and counts it as stalled meanwhile;
// held is what else the connection holds until the write is done. st is
// the record to use (a connection reuses its own); nil allocates one.
func (s *Server) writeStalled(st *stall, nc net.Conn, write func([]byte) (int, error), b []byte, held int64) (int, error) {
	if s.maxStalled() < 0 {
		return write(b)
	}
	return s.stalled(st, nc, int64(len(b))+held, func() (int, error) { return write(b) })
}

// stalled runs f, which waits for the client (a write it does not read,
// or a request body it has not finished sending), counted as stalled with
// the n bytes its connection holds meanwhile. st is as for writeStalled.
func (s *Server) stalled(st *stall, nc net.Conn, n int64, f func() (int, error)) (int, error) {
	if st == nil {
		st = new(stall)
	}
	*st = stall{nc: nc, n: n, since: time.Now()}
	ss := &s.stalls
	ss.mu.Lock()
	if ss.m == nil {
		ss.m = make(map[*stall]struct{})
	}
	ss.m[st] = struct{}{}
	ss.bytes += st.n
	ss.over.Store(ss.bytes > s.maxStalled())
	start := !ss.watching
	ss.watching = true
	ss.mu.Unlock()
	if start {
		s.startWatchdog()
	}
	k, err := f()
	ss.mu.Lock()
	delete(ss.m, st)
	ss.bytes -= st.n
	ss.over.Store(ss.bytes > s.maxStalled())
	ss.mu.Unlock()
	st.nc = nil
	return k, err
}

// startWatchdog starts the goroutine that cuts stalled connections, unless
// the server is closed. The goroutine ends when nothing is stalled.
func (s *Server) startWatchdog() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.stalls.mu.Lock()
		s.stalls.watching = false
		s.stalls.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.watchStalls()
}

func (s *Server) watchStalls() {
	defer s.wg.Done()
	t := time.NewTicker(s.age() / 2)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			s.stalls.mu.Lock()
			s.stalls.watching = false
			s.stalls.mu.Unlock()
			return
		case <-t.C:
		}
		if !s.cutStalls(time.Now()) {
			return
		}
	}
}

// cutStalls cuts what must be cut at now, returns cut connections' memory
// to the OS now and then, and reports whether the watchdog goes on.
func (s *Server) cutStalls(now time.Time) bool {
	ss := &s.stalls
	ss.mu.Lock()
	if ss.toFree && now.Sub(ss.cutAt) >= s.age() && now.Sub(ss.freed) >= freeEvery {
		// The connections cut have let go of their buffers by now: two
		// collections empty the buffer pools (sync.Pool keeps a victim
		// for one), then the heap goes back to the OS, where the
		// runtime would return it only over minutes.
		ss.toFree, ss.freed = false, now
		ss.frees++
		ss.mu.Unlock()
		runtime.GC()
		debug.FreeOSMemory()
		ss.mu.Lock()
	}
	if len(ss.m) == 0 && !ss.toFree {
		ss.watching = false
		ss.mu.Unlock()
		return false
	}
	limit, total := s.maxStalled(), ss.bytes
	var cut []*stall
	if total > limit {
		var old []*stall
		for st := range ss.m {
			if !st.cut && now.Sub(st.since) >= s.age() {
				old = append(old, st)
			}
		}
		slices.SortFunc(old, func(a, b *stall) int { return a.since.Compare(b.since) })
		for _, st := range old {
			if total <= limit {
				break
			}
			st.cut = true
			total -= st.n
			cut = append(cut, st)
		}
		ss.cuts += uint64(len(cut))
		if len(cut) > 0 {
			ss.toFree, ss.cutAt = true, now
		}
	}
	// Set the deadlines under the lock: a write or read that ends meanwhile
	// cannot leave its stall record (and its conn) until they are set.
	for _, st := range cut {
		st.nc.SetDeadline(time.Unix(1, 0))
	}
	held := ss.bytes
	ss.mu.Unlock()
	if len(cut) > 0 {
		s.logf("memcache: closing %d connections stalled for %v or more (not reading their replies, or not finishing a request): stalled connections held %d MiB (limit %d MiB)",
			len(cut), s.age(), held>>20, limit>>20)
	}
	return true
}

// StalledCuts returns how many connections the server closed because
// their clients did not read their replies while it was over
// MaxStalledBytes.
func (s *Server) StalledCuts() uint64 {
	s.stalls.mu.Lock()
	defer s.stalls.mu.Unlock()
	return s.stalls.cuts
}

// windowSize is how many keys the next get window of m may take: one
// while the server is over its stalled-reply limit.
func (c *conn) windowSize(m *getMany) int {
	if c.s.stalls.over.Load() {
		return 1
	}
	return m.size
}
