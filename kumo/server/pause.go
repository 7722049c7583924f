package server

import (
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/rpc"
)

// Reads after a pause. A server that did not run for a while (SIGSTOP, a
// stalled VM, a long swap storm) may have been marked fault meanwhile, and
// its keys written and deleted on the other owners; the requests that queued
// up for it while it did not run (a gateway embedded in it has clients of
// its own, which wait on their connections however long it takes) would
// read its store as it was, and answer old values and deleted keys (hunt
// 27a: a server stopped 4-10 s answered up to 300 of 600 such gets with
// old values or deleted keys). After such a stall the server refuses reads
// (wire.MsgNotReady, so gateways read from the other owners) until it has
// heard from a manager: a keepalive that started after the stall was
// answered and the hash spaces it announced were fetched (and adopted, or
// refused as adopt refuses a space in which every server is fault: after
// all servers were paused together, the spaces they hold are the last
// they know). If no manager answers for pauseSilent after the stall, they
// are down or cut off, and the server serves with the spaces it holds, as
// when they are down before it.
//
// pauseWatch notices a stall after the fact, on its first tick after the
// process runs again; a read that comes before that tick sees the watch's
// last tick too far in the past and counts as after a stall itself.

// pauseTick is how often pauseWatch looks at the clock.
const pauseTick = 100 * time.Millisecond

// pauseMin is the shortest gap between two ticks that counts as a stall:
// shorter ones cannot have cost the server its place (a manager marks a
// server fault after seconds of silence), and a busy machine delays ticks
// by less.
const pauseMin = time.Second

// pauseWatch records the last tick (lastTick) and the end of the last
// stall (pausedAt), until the server closes.
func (s *Server) pauseWatch() {
	defer s.loops.Done()
	t := time.NewTicker(pauseTick)
	defer t.Stop()
	prev := time.Now()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if gap := now.Sub(prev); gap > pauseMin {
			s.pausedAt.Store(now.UnixNano())
			s.log.Warnf("server did not run for %v: serving reads again once a manager confirms its hash space", gap.Round(time.Millisecond))
		}
		prev = now
		s.lastTick.Store(now.UnixNano())
	}
}

// pauseSilent is how long after a stall no manager may have answered
// before the server serves reads with the hash spaces it holds.
const pauseSilent = 5 * time.Second

// pauseCheck refuses a read at now (unix nanoseconds) after a stall that
// no manager has been heard from since; see pauseWatch.
func (s *Server) pauseCheck(now int64) error {
	end := s.pausedAt.Load()
	if now-s.lastTick.Load() > int64(pauseMin) {
		end = now // a stall pauseWatch has not seen yet
	}
	if end == 0 || len(s.mgrs) == 0 || s.mgrSynced.Load() >= end {
		return nil
	}
	if now-end > int64(pauseSilent) && s.mgrAnswer.Load() < end {
		return nil // no manager answers: the space we hold is the last we know
	}
	return errPaused
}

// errPaused is pauseCheck's refusal.
var errPaused = &rpc.Error{Msg: wire.MsgNotReady}
