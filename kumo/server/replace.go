package server

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"kumofs/internal/metrics"
	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
	"kumofs/store"
)

// Rebalancing ("replace") follows kumofs: in the copy phase every server
// adopts the new write hash space and pushes the records whose owners
// changed to their new owners (only the first surviving old owner sends, so
// each moved key travels once); reads stay on the old read hash space. When
// all servers reported the end of their copy, the managers switch the read
// space and start the delete phase, in which servers drop what they no
// longer own. Records travel in batches of newest-clock-wins ReplicateBatch
// calls, one batch in flight per destination, so memory stays bounded.

const (
	batchRecords = 512
	batchBytes   = 1 << 20
)

func (s *Server) handleReplaceCopyStart(req *rpc.Request) {
	sp, err := wire.ReadSpaces(req.Params, 1)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	s.clk.Observe(sp.Clock)
	w := sp.W
	full := false
	if sp.More > 0 {
		full, _, _ = msgpack.ReadBool(sp.Rest)
	}
	// A store away for longer than the garbage time (awayLong) drops its
	// old records of keys that a server current all the while owns
	// (authorities) before it takes part again, if it comes back as a new
	// owner (our read space has it fault or not at all): the copy then
	// brings it their copies. A server still a reader gets only the keys
	// that move, so it keeps its store whatever awayLong says; and when no
	// other server served meanwhile (the whole cluster was down) every
	// store is needed.
	// Records stored from elsewhere are noted from the moment the store
	// was found away (setAway), so that the purge cannot drop one of them
	// (its clock may predate cutoff; the other owners' copies can arrive
	// before this copy start).
	since, cutoff := time.Unix(0, s.lastCurrent.Load()), s.clk.Now()
	r := s.rhs.Load()
	mayPurge := s.awayLong.Load() && w.IsActive(s.cfg.Self) && !r.IsActive(s.cfg.Self) && s.beginPurgeNotes()
	if mayPurge {
		// Held until the purge is done: a copy that starts meanwhile (the
		// next replace) waits for it before it sends anything.
		s.purgeRun.Lock()
	}
	req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
	src := s.rhs.Load()
	if w.IsActive(s.cfg.Self) && !src.IsActive(s.cfg.Self) {
		// Coming back. If neither a reader nor every other owner holds
		// some of our keys (the others are down), the writes we missed
		// during our break are nowhere to be copied from: our stint as
		// current ends here (markCurrent starts a new one once we are a
		// reader), and no long-away server may take the next one as
		// holding every version from before it left (stintSince).
		complete := copyComplete(src, w, s.cfg.Self, s.wasActiveWhenCurrent)
		s.stintPartial.Store(!complete)
		if !complete {
			s.prevSince.Store(0)
		}
	}
	if !full {
		s.adopt(w, nil)
	}
	s.copyTime.Store(w.Clock())
	s.repl.Add(1)
	go func() {
		defer s.repl.Done()
		if mayPurge {
			if auth := s.authorities(w, since); len(auth) > 0 {
				s.purgeStale(cutoff, since, w, auth)
			} else {
				s.endPurgeNotes()
				s.awayLong.Store(false)
				s.log.Infof("store was last current %v ago, but no other server has been current since: keeping its records", time.Since(since).Round(time.Second))
			}
		} else {
			s.purgeRun.Lock()
		}
		s.purgeRun.Unlock()
		ok := s.replaceCopy(src, w, full)
		s.notifyManagers(wire.MgrReplaceCopyEnd, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 3)
			b = msgpack.AppendUint(b, w.Clock())
			b = msgpack.AppendUint(b, s.clk.Now())
			return msgpack.AppendBool(b, ok)
		})
	}()
}

// batcher accumulates records for one destination.
type batcher struct {
	s     *Server
	to    ring.Addr
	buf   []byte // encoded [DBKey, DBValue] pairs
	count int
	sent  int
	err   error

	// what names the job in the log ("" means "replace copy"), and ok
	// and fail count its records (nil: the copy phase's counters).
	what     string
	ok, fail *metrics.Counter

	// since is when the first record in buf was read from the store;
	// flush delivers buf only within half the garbage time of it.
	since time.Time

	older []keyedID // scratch for add
}

// errStaleBatch says a batch flush gave up because its records were read
// too long ago to be delivered safely (see batcher.flush).
var errStaleBatch = errors.New("server: records read longer ago than half the garbage time (-gX); a newer delete of them may be purged by now")

func (b *batcher) add(rec *store.Record) {
	if b.err != nil {
		return
	}
	if b.count > 0 && time.Since(b.since) >= b.s.cfg.GarbageMax/4 {
		// A batch that fills slowly (a copy walking a large store for
		// this destination's keys) goes out while it is fresh.
		if b.flush(); b.err != nil {
			return
		}
	}
	if b.count == 0 {
		b.since = time.Now()
	}
	if t, ok := b.s.asFlushed(rec); ok {
		rec = &t // a value older than a flush_all goes as its tombstone
	}
	// The version a remembered write made goes with its request id, and
	// with the ids of the earlier remembered writes of its key, whose
	// effects it holds too: a retry of any of them reaching the new owner
	// gets the first outcome. [DBKey, DBValue, dedup | nil, dedupAt...]
	var id uint64
	var de dedupEntry
	b.older = b.older[:0]
	if len(rec.Key) >= 8 {
		h := binary.BigEndian.Uint64(rec.Key)
		id, de, _ = b.s.dedup.byVersionOf(h, rec.Clock)
		b.older = b.s.dedup.olderIDs(h, rec.Clock, b.older)
	}
	switch {
	case len(b.older) > 0:
		b.buf = msgpack.AppendArrayHeader(b.buf, uint32(3+len(b.older)))
	case id != 0:
		b.buf = msgpack.AppendArrayHeader(b.buf, 3)
	default:
		b.buf = msgpack.AppendArrayHeader(b.buf, 2)
	}
	enc, _ := encodeRecord(rec)
	b.buf = append(b.buf, enc...)
	switch {
	case id != 0:
		b.buf = appendDedup(b.buf, id, &de)
	case len(b.older) > 0:
		b.buf = msgpack.AppendNil(b.buf)
	}
	for i := range b.older {
		b.buf = appendDedupAt(b.buf, &b.older[i])
	}
	b.count++
	if b.count >= batchRecords || len(b.buf) >= batchBytes {
		b.flush()
	}
}

// flush sends the batch, retrying for a while. It delivers the records
// only until half the garbage time after the first was read: a record
// this server held then may since have been deleted elsewhere, and once
// that tombstone is older than the garbage time it is purged, after
// which the late record would bring the key back. That is how a repair
// push to a server killed just then reached it after it restarted,
// discarded its old store and was attached again (-gX 2: the dead
// server's copy of a deleted key came back).
func (b *batcher) flush() {
	if b.count == 0 || b.err != nil {
		return
	}
	s := b.s
	deadline := b.since.Add(s.cfg.GarbageMax / 2)
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if !time.Now().Before(deadline) {
			err = errStaleBatch
			break
		}
		c := s.stream(b.to, deadline)
		if c == nil {
			b.err = ErrClosed
			return
		}
		ctx, cancel := context.WithDeadline(s.ctx, earliest(time.Now().Add(10*time.Second), deadline))
		var res rpc.Result
		res, err = c.Call(ctx, wire.SrvReplicateBatch, func(p []byte) []byte {
			p = msgpack.AppendArrayHeader(p, 2)
			p = msgpack.AppendUint(p, s.clk.Now())
			p = msgpack.AppendArrayHeader(p, uint32(b.count))
			return append(p, b.buf...)
		})
		cancel()
		if err == nil {
			res.Release()
			break
		}
		s.m.rpcErrs.Count(rpc.ErrorKind(err))
		if s.closed.Load() {
			break
		}
		select {
		case <-s.ctx.Done():
		case <-time.After(min(time.Duration(100<<min(attempt, 4))*time.Millisecond, time.Until(deadline))):
		}
	}
	okC, failC, what := b.ok, b.fail, b.what
	if okC == nil {
		okC, failC = s.m.copyOK, s.m.copyErr
	}
	if what == "" {
		what = "replace copy"
	}
	if err != nil {
		s.log.Warnf("%s to %s failed: %v", what, b.to, err)
		failC.Add(uint64(b.count))
		b.err = err
		return
	}
	b.sent += b.count
	okC.Add(uint64(b.count))
	b.count = 0
	b.buf = b.buf[:0]
}

// replaceCopy pushes records to their new owners; it reports whether every
// batch arrived.
func (s *Server) replaceCopy(src, dst *ring.HashSpace, full bool) bool {
	s.replState.Or(wire.ReplCopying)
	defer s.replState.And(^uint32(wire.ReplCopying))
	s.log.Infof("start replace copy; full=%v", full)
	// Nodes active before and not after: their data is gone, not a source.
	activeIn := func(hs *ring.HashSpace) map[ring.Addr]bool {
		m := make(map[ring.Addr]bool)
		for _, n := range hs.Nodes() {
			if n.Active {
				m[n.Addr] = true
			}
		}
		return m
	}
	dstActive := activeIn(dst)
	if len(dstActive) == 0 {
		return true
	}
	// A server that was not a reader before (attached or recovered) also
	// sends what it holds to the owners that may lack it (returnStints).
	var stints map[ring.Addr]int64
	if !full && !activeIn(src)[s.cfg.Self] {
		stints = s.returnStints(dst)
	}
	batches := make(map[ring.Addr]*batcher)
	get := func(a ring.Addr) *batcher {
		b := batches[a]
		if b == nil {
			b = &batcher{s: s, to: a}
			batches[a] = b
		}
		return b
	}
	err := s.db.ForEach(func(rec *store.Record) error {
		if s.closed.Load() {
			return ErrClosed
		}
		h, _, ok := wire.SplitDBKey(rec.Key)
		if !ok {
			return nil
		}
		do := dst.Owners(h)
		if full {
			for i := 0; i < do.Len(); i++ {
				if n := do.At(i); n.Active && n.Addr != s.cfg.Self {
					get(n.Addr).add(rec)
				}
			}
			return nil
		}
		so := src.Owners(h)
		// The first source owner that is still active sends.
		var sender ring.Addr
		found := false
		for i := 0; i < so.Len(); i++ {
			n := so.At(i)
			if n.Active && dstActive[n.Addr] {
				sender, found = n.Addr, true
				break
			}
		}
		if !found {
			// No owner was active before (every one of them was fault,
			// as when the whole cluster went down after one server had
			// failed): the servers coming back hold copies of different
			// ages, and none is known to be current. Each holder sends
			// its copy to the new owners, which keep the newest.
			for i := 0; i < do.Len(); i++ {
				if n := do.At(i); n.Active && n.Addr != s.cfg.Self {
					get(n.Addr).add(rec)
				}
			}
			return nil
		}
		if sender != s.cfg.Self {
			if stints != nil {
				for i := 0; i < do.Len(); i++ {
					if n := do.At(i); n.Active && n.Addr != s.cfg.Self && mayLack(stints[n.Addr], rec.Clock) {
						get(n.Addr).add(rec)
					}
				}
			}
			return nil
		}
	next:
		for i := 0; i < do.Len(); i++ {
			n := do.At(i)
			if !n.Active || n.Addr == s.cfg.Self {
				continue
			}
			for j := 0; j < so.Len(); j++ {
				if m := so.At(j); m.Active && m.Addr == n.Addr {
					continue next // already held it
				}
			}
			get(n.Addr).add(rec)
		}
		return nil
	})
	ok := err == nil
	total := 0
	for _, b := range batches {
		b.flush()
		if b.err != nil {
			ok = false
		}
		total += b.sent
	}
	if err != nil {
		s.log.Errorf("replace copy: %v", err)
		if errors.Is(err, store.ErrCorrupt) {
			s.noteCorrupt()
		}
	}
	s.log.Infof("replace copy done: %d records sent to %d servers, ok=%v", total, len(batches), ok)
	return ok
}

// copyComplete reports whether the copy from src to dst brings self every
// version of the keys it owns in dst: each has an owner in src that is
// active in both (a reader the replace copies from), or every owner of it
// in dst is active (they all send each other what they hold, as in a new
// cluster or one restarted whole) or was not active when self was last
// current (wasActive false: down since before our break, it holds nothing
// newer than we do). Ownership changes only at virtual nodes, so checking
// the owners at every virtual node of either space covers every range.
func copyComplete(src, dst *ring.HashSpace, self ring.Addr, wasActive func(ring.Addr) bool) bool {
	for _, hs := range []*ring.HashSpace{src, dst} {
		for _, v := range hs.VirtualNodes() {
			do := dst.Owners(v.Hash)
			mine := false
			for i := 0; i < do.Len(); i++ {
				if do.At(i).Addr == self {
					mine = true
				}
			}
			if !mine {
				continue
			}
			sourced, all := false, true
			so := src.Owners(v.Hash)
			for i := 0; i < so.Len(); i++ {
				if n := so.At(i); n.Active && n.Addr != self && dst.IsActive(n.Addr) {
					sourced = true
				}
			}
			for i := 0; i < do.Len(); i++ {
				n := do.At(i)
				all = all && (n.Active || !wasActive(n.Addr))
			}
			if !sourced && !all {
				return false
			}
		}
	}
	return true
}

// returnStints returns, for a server coming back into the hash space with
// a store (attached or recovered), the other active servers of dst and
// since when each has been current (StatCurrentSince; 0 if it is not, or
// did not answer). A reader's copy of a key is the one the replace copies
// (the first source owner sends), but a reader holds every write only
// from the start of its stint: one that became a reader while every
// server that held the data was down (its own copy cut short, the others
// detached, as -a does) lacks the older ones, and the servers coming back
// with them must send them, or reads served by it would miss those keys
// for good (hunt 26a: 285 of 900 acknowledged keys). Newest wins where
// they arrive, and a long-away store has purged what could bring back a
// deleted key (purgeStale) before this runs.
func (s *Server) returnStints(dst *ring.HashSpace) map[ring.Addr]int64 {
	m := make(map[ring.Addr]int64)
	for _, n := range dst.Nodes() {
		if n.Active && n.Addr != s.cfg.Self {
			since, _ := s.peerStat(n.Addr, wire.StatCurrentSince)
			m[n.Addr] = int64(since)
		}
	}
	return m
}

// returnMargin widens returnStints' comparison of a record's clock with a
// stint's start: a ClockTime's seconds can run ahead of the wall clock.
const returnMargin = 10 * time.Second

// mayLack reports whether a server current since since (unix ns, 0 if not
// current) may lack the version of a key stamped ct.
func mayLack(since int64, ct uint64) bool {
	return since == 0 || int64(clock.Seconds(ct))*int64(time.Second) <= since+int64(returnMargin)
}

func (s *Server) handleReplaceDeleteStart(req *rpc.Request) {
	sp, err := wire.ReadSpaces(req.Params, 1)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	s.clk.Observe(sp.Clock)
	w := sp.W
	req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
	s.adopt(w, w)
	s.repl.Add(1)
	go func() {
		defer s.repl.Done()
		s.replaceDelete(w)
		s.notifyManagers(wire.MgrReplaceDeleteEnd, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = msgpack.AppendUint(b, w.Clock())
			return msgpack.AppendUint(b, s.clk.Now())
		})
	}()
}

// replaceDelete drops every record whose key s no longer owns under w.
func (s *Server) replaceDelete(w *ring.HashSpace) {
	s.replState.Or(wire.ReplDeleting)
	defer s.replState.And(^uint32(wire.ReplDeleting))
	self := false
	for _, n := range w.Nodes() {
		if n.Addr == s.cfg.Self && n.Active {
			self = true
		}
	}
	if !self {
		s.log.Warnf("replace delete skipped: this server is not active in the hash space")
		return
	}
	var drop [][]byte
	err := s.db.ForEach(func(rec *store.Record) error {
		h, _, ok := wire.SplitDBKey(rec.Key)
		if !ok {
			return nil
		}
		o := w.Owners(h)
		for i := 0; i < o.Len(); i++ {
			if n := o.At(i); n.Active && n.Addr == s.cfg.Self {
				return nil
			}
		}
		drop = append(drop, append([]byte(nil), rec.Key...))
		return nil
	})
	if err != nil {
		s.log.Errorf("replace delete: %v", err)
		return
	}
	for _, k := range drop {
		if _, err := s.db.Delete(k, nil); err != nil {
			s.log.Errorf("replace delete: %v", err)
			return
		}
	}
	s.log.Infof("replace delete done: %d records dropped", len(drop))
}

// earliest returns the earlier of a and b.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
