package server

import (
	"fmt"
	"math"
	"slices"
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
// so that their space is reclaimed and they stay gone for good (also for a
// server that gets them in a rebalance); Close waits for it.
//
// The flush point is durable before it is in force: the flush file next to
// the store (<StorePath>.flush, flushfile.go) records it, the flush point
// whose sweep's tombstones are on stable storage (swept), and the delayed
// flushes not yet due. handleFlush writes it (atomically, fsynced) before it
// raises the in-memory point and answers, and answers an error instead when
// it cannot; a delayed flush is written when it is scheduled and again, off
// the schedule, when it fires; a finished sweep syncs the store and then
// records swept. New reads the file before it serves: it restores the flush
// point, fires the delayed flushes that fell due meanwhile, re-arms the
// others and sweeps again if the last sweep did not become durable. So a
// server killed (kill -9) after answering flush_all, before its sweep
// finished or its store synced, still hides the flushed values when it comes
// back. New refuses to start on a flush file it cannot read or verify.

// flushState is a server's flush point, its sweeps and its flush file.
//
// Lock order: sweepMu, then fileMu, then Server.flushMu.
type flushState struct {
	at atomic.Uint64 // the flush point: values stamped below it are gone

	sweepMu sync.Mutex // serializes sweeps; protects swept
	swept   uint64     // the flush point the last finished sweep reached

	fileMu sync.Mutex  // serializes raising at and writing the flush file; protects file
	path   string      // the flush file; set by New
	file   flushRecord // what the flush file holds (zero: no file)

	writes atomic.Uint64 // flush file writes (tests)
}

// testHookSweep, if set, runs first in every sweep; false skips the sweep
// (as in a server killed before it).
var testHookSweep func() bool

// flushFilePath returns the flush file of the store at storePath.
func flushFilePath(storePath string) string { return storePath + ".flush" }

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

// handleFlush implements flush_all across the cluster: [at_unix, clock,
// flush_point?]. The gateway sends it to every active server. With at 0,
// flush_point is the flush point, which the gateway chose above every
// active server's clock (gateway.flushPoint), and this server's clock
// advances to it; without one (an older gateway) it is now by this
// server's clock, which has observed every write it holds, so that every
// acknowledged earlier write is older, but which, for a request taken late
// (this server paused, and marked fault meanwhile), is also above writes
// acknowledged after the flush_all's OK. A past at flushes what was stored
// before that second; a future at schedules the flush. The reply comes as
// soon as the flush point (or the schedule) is on stable storage and the
// flush point in force, before the sweep; if the flush file cannot be
// written, the reply is an error and nothing changes.
func (s *Server) handleFlush(req *rpc.Request) {
	at, err := clockParam(req.Params, 0)
	if err != nil || at > math.MaxUint32 {
		req.ReplyError(errParams)
		return
	}
	if c, err := clockParam(req.Params, 1); err == nil {
		s.clk.ObserveFrom(wire.PeerOf(req.Conn), c)
	}
	var fc uint64
	if c, err := clockParam(req.Params, 2); err == nil && at == 0 && c != 0 {
		if err := s.clk.ObserveFrom(wire.PeerOf(req.Conn), c); err != nil {
			req.ReplyError(&rpc.Error{Msg: "server: flush point refused: " + err.Error()})
			return
		}
		fc = c
	}
	if !s.flushJob() {
		req.ReplyError(&rpc.Error{Msg: ErrClosed.Error()})
		return
	}
	// Off the connection's read goroutine: the flush file is fsynced.
	go func() {
		defer s.repl.Done()
		flush := func() error { return s.flushAll(at) }
		if fc != 0 {
			flush = func() error { return s.flushTo(fc) }
		}
		if err := flush(); err != nil {
			s.log.Errorf("flush_all refused: %v", err)
			req.ReplyError(&rpc.Error{Msg: "server: cannot record the flush (see the server's log)"})
			return
		}
		req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
	}()
}

// flushAll is handleFlush's work: the flush point rises, or a delayed flush
// is scheduled, durably. As in memcached, a flush_all replaces the delayed
// one still pending, if any: "flush_all 60" then "flush_all" flushes once,
// now, and does not wipe a minute later what was written after the second;
// "flush_all 60" then "flush_all 600" flushes once, in ten minutes.
func (s *Server) flushAll(at uint64) error {
	switch {
	case at == 0:
		return s.flushTo(s.clk.Now())
	case int64(at) <= time.Now().Unix():
		return s.flushTo(at << 32)
	}
	var added bool
	err := s.commitFlush(func(r *flushRecord) error {
		if !slices.Equal(r.Sched, []uint64{at}) {
			r.Sched = nil
		}
		added = r.schedule(at)
		return nil
	})
	if err == nil && added {
		s.armFlush(at)
	}
	return err
}

// flushTo raises the flush point to fc, durably, drops the delayed flushes
// still pending, and starts a sweep.
func (s *Server) flushTo(fc uint64) error {
	if err := s.commitFlush(func(r *flushRecord) error {
		r.At = max(r.At, fc)
		r.Sched = nil
		return nil
	}); err != nil {
		return err
	}
	s.startSweep()
	return nil
}

// commitFlush applies change to the flush state; if that changed anything,
// it writes the flush file, and only then it raises the in-memory flush
// point to the file's. On an error from change or from the write nothing
// changes.
func (s *Server) commitFlush(change func(r *flushRecord) error) error {
	f := &s.flushing
	f.fileMu.Lock()
	defer f.fileMu.Unlock()
	next := f.file.clone()
	// Above the file's only after a fired flush could not be written;
	// this write makes it durable.
	next.At = max(next.At, f.at.Load())
	if err := change(&next); err != nil {
		return err
	}
	next.prune()
	if !next.equal(&f.file) {
		if err := writeFlushFile(f.path, &next); err != nil {
			return err
		}
		f.writes.Add(1)
		f.file = next
	}
	s.raiseFlush(next.At)
	return nil
}

// raiseFlush raises the in-memory flush point to fc (it never goes down).
// The clock moves past fc first, as past a stored version: a write after
// the flush must be newer than it even when this host's wall clock lags
// the flush_all's time.
func (s *Server) raiseFlush(fc uint64) {
	s.clk.Advance(fc)
	for old := s.flushing.at.Load(); fc > old && !s.flushing.at.CompareAndSwap(old, fc); old = s.flushing.at.Load() {
	}
}

// flushJob registers a flush job (a reply, a sweep, a fired delayed flush)
// that Close waits for, and reports true; the caller calls s.repl.Done when
// it ends. It reports false once Close has begun. Under flushMu, which
// Close takes after setting closed and before it waits for s.repl: either
// Close waits for the job or it does not start.
func (s *Server) flushJob() bool {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.closed.Load() {
		return false
	}
	s.repl.Add(1)
	return true
}

// armFlush arms the timer of the delayed flush at unix second at (Close
// stops it).
func (s *Server) armFlush(at uint64) {
	d := time.Until(time.Unix(int64(at), 0))
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.closed.Load() {
		return
	}
	s.flushTimers = append(s.flushTimers, time.AfterFunc(d, func() { s.fireFlush(at) }))
}

// fireFlush puts the delayed flush at unix second at in force, unless a
// later flush_all replaced it: the flush point rises to at<<32 and at
// leaves the flush file's schedule, in one write. If that write fails the
// flush is in force anyway: the file still schedules it, and a restart
// fires it at once.
func (s *Server) fireFlush(at uint64) {
	if !s.flushJob() {
		return
	}
	defer s.repl.Done()
	fired := false
	if err := s.commitFlush(func(r *flushRecord) error {
		fired = r.fire(at)
		return nil
	}); err != nil && fired {
		s.log.Errorf("delayed flush_all of %d: %v (in force; the next start fires it again)", at, err)
		s.raiseFlush(at << 32)
	}
	if fired {
		s.startSweep()
	}
}

// openFlushFile reads, for New, the flush file of the store at
// cfg.StorePath. One it cannot read or verify stops the start, with one
// log line: ignoring it could bring flushed values back.
func openFlushFile(cfg *Config) (flushRecord, error) {
	rec, err := loadFlushFile(flushFilePath(cfg.StorePath))
	if err != nil {
		err = fmt.Errorf("%w; not starting, as the store may still hold values flushed before the stop: delete the file to start anyway (those values may come back)", err)
		cfg.Log.Errorf("%v", err)
	}
	return rec, err
}

// restoreFlush puts a new Server's flush file, rec, in force before it
// serves: the flush point, and the delayed flushes that fell due while it
// was down (at their second's flush point, as if they had fired). The
// sweep and the timers of the others start in resumeFlush.
func (s *Server) restoreFlush(rec flushRecord) {
	f := &s.flushing
	f.path = flushFilePath(s.cfg.StorePath)
	f.file = rec
	f.swept = rec.Swept
	now := uint64(time.Now().Unix())
	err := s.commitFlush(func(r *flushRecord) error {
		for _, t := range rec.Sched {
			if t <= now {
				r.fire(t)
			}
		}
		return nil
	})
	if err != nil {
		s.log.Errorf("delayed flush_all fell due while down: %v (in force; the next start fires it again)", err)
		for _, t := range rec.Sched {
			if t <= now {
				s.raiseFlush(t << 32)
			}
		}
	}
}

// resumeFlush arms the delayed flushes restoreFlush left pending and sweeps
// if the last durable sweep is below the flush point.
func (s *Server) resumeFlush() {
	f := &s.flushing
	f.fileMu.Lock()
	pending := slices.Clone(f.file.Sched)
	unswept := f.file.Swept < f.at.Load() // above the file's At if restoreFlush's write failed
	f.fileMu.Unlock()
	for _, t := range pending {
		s.armFlush(t) // a second timer for one scheduled meanwhile changes nothing
	}
	if unswept {
		s.startSweep()
	}
}

// startSweep starts a sweep, which Close waits for.
func (s *Server) startSweep() {
	if !s.flushJob() {
		return
	}
	go func() {
		defer s.repl.Done()
		s.sweep()
	}()
}

// sweep turns every value stored before the flush point into a tombstone at
// the flush point. Writes stamped after it are newer and stay. Then it
// syncs the store and records in the flush file how far the durable
// tombstones go, so that a restart does not sweep again.
func (s *Server) sweep() {
	if testHookSweep != nil && !testHookSweep() {
		return
	}
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
	if err := s.db.Sync(); err != nil {
		s.log.Errorf("flush: syncing the sweep: %v", err)
		return
	}
	if err := s.commitFlush(func(r *flushRecord) error {
		r.Swept = max(r.Swept, fc)
		return nil
	}); err != nil {
		s.log.Errorf("flush: recording the sweep: %v", err)
	}
}
