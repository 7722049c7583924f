package memcache

import "time"

// SetStallAge sets how long a write must have been blocked before the
// stall watchdog may cut its connection (tests shorten it).
func SetStallAge(s *Server, d time.Duration) { s.stallAge = d }

// SetBufHooks sets the test hooks that see each buffer returned to a pool
// and each wait of a connection for its pending request (nil: none).
func SetBufHooks(putBuf func(b []byte), settle func()) {
	testHookPutBuf, testHookSettle = putBuf, settle
}

// LongBytes returns the capacity of the long get lines s's connections hold.
func LongBytes(s *Server) int64 { return s.longBytes.Load() }

// MaxLongLine is the longest get line served.
const MaxLongLine = maxLongLine

// SetMaxBodies sets how much of large request bodies s's connections may
// hold together, and BodyBytes returns how much they hold.
func SetMaxBodies(s *Server, n int64) { s.maxBodies = n }

// SetBodyWait sets how long a large body waits for room in the budget
// (negative: refused at once).
func SetBodyWait(s *Server, d time.Duration) { s.bodyWaitFor = d }
func BodyBytes(s *Server) int64              { return s.bodyBytes.Load() }

// BodyWaiters returns how many connections wait for room among the bodies.
func BodyWaiters(s *Server) int32 { return s.bodyWait.n.Load() }

// SetBurstBodies sets how much large request bodies must hold at once for
// their end to return memory to the system, and MemoryReturns counts those
// returns (after cuts or bursts).
func SetBurstBodies(s *Server, n int64) { s.burstBodies = n }
func BodyBurst(s *Server) bool          { return s.bodyBurst.Load() }
func MemoryReturns(s *Server) uint64 {
	s.stalls.mu.Lock()
	defer s.stalls.mu.Unlock()
	return s.stalls.frees
}

// FetchWaiting returns how many windows wait for s's fetch budget, and
// FetchUsed what the windows in flight took of it.
func FetchWaiting(s *Server) int { return s.fetch.waiting() }
func FetchUsed(s *Server) int64 {
	s.fetch.mu.Lock()
	defer s.fetch.mu.Unlock()
	return s.fetch.used
}

// SetStormConns sets how many connections at once make their leaving a
// storm that returns memory to the system.
func SetStormConns(s *Server, n int) { s.stormConns = n }

// FreePending reports whether a return of memory to the system is due.
func FreePending(s *Server) bool {
	s.stalls.mu.Lock()
	defer s.stalls.mu.Unlock()
	return s.stalls.toFree
}
