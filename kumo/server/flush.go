package server

import (
	"sync"
	"sync/atomic"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/store"
)

// flush_all is lazy, as in memcached. A flush raises the server's flush
// point (a ClockTime) and is answered at once; from then on every value
// stamped below the flush point counts as gone:
//
//   - reads and read-modify-write decisions do not see it (visible);
//   - a replica, a rebalance or a catch-up that brings one in stores a
//     tombstone at the flush point instead (applyFlushed), and a coordinator
//     whose write is older than this replica's flush point is told so and
//     re-stamps its write above it (newerError), so no write made after the
//     flush_all's OK is hidden;
//   - GetRaw and the rebalance streams hand it on as that tombstone
//     (asFlushed), so a server that never saw the flush does not revive it.
//
// A background sweep then turns the flushed values into tombstones dated at
// the flush point (the eager work flush_all used to do before answering),
// so they stay gone after a restart and their space is reclaimed; Close
// waits for it. The flush point itself lives in memory only: a server
// killed (kill -9) before its sweep finished and synced serves the values
// the sweep had not reached yet when it comes back.

// flushState is a server's flush point and its sweeps.
type flushState struct {
	at atomic.Uint64 // the flush point: values stamped below it are gone

	sweepMu sync.Mutex // serializes sweeps; protects swept
	swept   uint64     // the flush point the last finished sweep reached
}

// flushed reports whether a version stamped ct is a value stored before the
// flush point.
func (s *Server) flushed(ct uint64, tombstone bool) bool {
	return !tombstone && ct < s.flushing.at.Load()
}

// visible reports whether a stored record is visible to memcached clients:
// live, and not stored before a flush_all.
func (s *Server) visible(r *store.Record, now int64) bool {
	return live(r, now) && !s.flushed(r.Clock, r.Tombstone)
}

// asFlushed reports whether rec is a value stored before the flush point
// and, if so, returns the tombstone the sweep will leave in its place.
func (s *Server) asFlushed(rec *store.Record) (store.Record, bool) {
	fp := s.flushing.at.Load()
	if rec.Tombstone || rec.Clock >= fp {
		return store.Record{}, false
	}
	return store.Record{Key: rec.Key, Clock: fp, Tombstone: true}, true
}

// applyFlushed stores, for a value older than the flush point that a peer
// sent, the tombstone at the flush point instead (unless something newer is
// there). It reports false: the value was not applied as sent.
func (s *Server) applyFlushed(dbkey []byte) (bool, error) {
	fp := s.flushing.at.Load()
	rec := store.Record{Key: dbkey, Clock: fp, Tombstone: true}
	if _, err := s.db.Update(&rec, newer(fp)); err != nil {
		return false, s.storeError(err)
	}
	return false, nil
}

// handleFlush implements flush_all across the cluster: [at_unix, clock].
// The gateway sends it to every active server. at 0 means now, by this
// server's clock (which has observed every write it holds, so every
// acknowledged earlier write is older); a past at flushes what was stored
// before that second; a future at schedules the flush. The reply comes as
// soon as the flush point is in force, before the sweep.
func (s *Server) handleFlush(req *rpc.Request) {
	at, err := clockParam(req.Params, 0)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	if c, err := clockParam(req.Params, 1); err == nil {
		s.clk.ObserveFrom(wire.PeerName(req.Conn), c)
	}
	switch {
	case at == 0:
		s.startFlush(s.clk.Now())
	case int64(at) <= time.Now().Unix():
		s.startFlush(at << 32)
	default:
		d := time.Until(time.Unix(int64(at), 0))
		s.flushMu.Lock()
		s.flushTimers = append(s.flushTimers, time.AfterFunc(d, func() { s.startFlush(at << 32) }))
		s.flushMu.Unlock()
	}
	req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
}

// startFlush raises the flush point to fc (it never goes down) and starts a
// sweep, which Close waits for. The clock moves past fc, as past a stored
// version: a write after the flush must be newer than it even when this
// host's wall clock lags the flush_all's time.
func (s *Server) startFlush(fc uint64) {
	s.clk.Advance(fc)
	for old := s.flushing.at.Load(); fc > old && !s.flushing.at.CompareAndSwap(old, fc); old = s.flushing.at.Load() {
	}
	// Under flushMu, which Close takes after setting closed and before it
	// waits for s.repl: either Close waits for this sweep or it is not
	// started.
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.closed.Load() {
		return
	}
	s.repl.Add(1)
	go func() {
		defer s.repl.Done()
		s.sweep()
	}()
}

// sweep turns every value stored before the flush point into a tombstone at
// the flush point. Writes stamped after it are newer and stay.
func (s *Server) sweep() {
	s.flushing.sweepMu.Lock()
	defer s.flushing.sweepMu.Unlock()
	fc := s.flushing.at.Load()
	if fc <= s.flushing.swept {
		return // an earlier sweep got this far
	}
	var keys [][]byte
	err := s.db.ForEach(func(r *store.Record) error {
		if !r.Tombstone && r.Clock < fc {
			keys = append(keys, append([]byte(nil), r.Key...))
		}
		return nil
	})
	if err != nil {
		s.log.Errorf("flush: %v", err)
		return
	}
	for _, k := range keys {
		rec := store.Record{Key: k, Clock: fc, Tombstone: true}
		if _, err := s.db.Update(&rec, newer(fc)); err != nil {
			s.log.Errorf("flush: %v", err)
			return
		}
	}
	s.flushing.swept = fc
	s.log.Infof("flushed %d items", len(keys))
}
