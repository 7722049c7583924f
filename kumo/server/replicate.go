package server

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// target is one replica a write must reach.
type target struct {
	addr  ring.Addr
	byRHS bool // an owner only in the read hash space (during a rebalance)
}

// errReplication is answered when a replica stayed unreachable, while still
// an active owner, for the whole replication timeout.
var errReplication = &rpc.Error{Msg: wire.MsgReplication}

// replication tracks one write's fan-out to its replicas.
type replication struct {
	s        *Server
	h        uint64
	wclock   atomic.Uint64 // clock of the whs the write is sent under (fencing)
	payload  []byte        // raw(DBKey) ‖ raw(DBValue); immutable
	deadline time.Time
	pending  atomic.Int32
	failed   atomic.Bool
	once     sync.Once
	done     func(error)
}

// replicate sends the record in payload to every other active owner of h
// and calls done once all stored it, or with an error when one could not be
// reached in time. A replica that stops being an active owner meanwhile (the
// managers marked it fault) no longer counts: the write is then safe on the
// owners that remain. done runs on an RPC goroutine or the caller's.
func (s *Server) replicate(h uint64, w, r *ring.HashSpace, payload []byte, done func(error)) {
	var buf [6]target
	targets := s.replicaTargets(h, w, r, buf[:0])
	if len(targets) == 0 {
		done(nil)
		return
	}
	start := time.Now()
	rp := &replication{s: s, h: h, payload: payload, deadline: start.Add(s.cfg.ReplTimeout), done: func(err error) {
		s.m.replLat.Observe(since(start))
		done(err)
	}}
	rp.wclock.Store(w.Clock())
	rp.pending.Store(int32(len(targets)))
	s.repl.Add(1)
	for _, t := range targets {
		rp.send(t, 0)
	}
}

func (rp *replication) finish(ok bool) {
	if !ok {
		rp.failed.Store(true)
	}
	if rp.pending.Add(-1) == 0 {
		rp.once.Do(func() {
			if rp.failed.Load() {
				rp.done(errReplication)
			} else {
				rp.done(nil)
			}
			rp.s.repl.Done()
		})
	}
}

func isObsolete(err error) bool {
	var re *rpc.Error
	return errors.As(err, &re) && re.Msg == wire.MsgObsolete
}

func (rp *replication) send(t target, attempt int) {
	s := rp.s
	c := s.peer(t.addr)
	if c == nil { // closing
		rp.finish(false)
		return
	}
	var flags uint64
	if t.byRHS {
		flags = 1
	}
	c.Go(wire.SrvReplicateSet, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 5)
		b = msgpack.AppendUint(b, s.clk.Now())
		b = msgpack.AppendUint(b, flags)
		b = append(b, rp.payload...)
		return msgpack.AppendUint(b, rp.wclock.Load())
	}, s.cfg.CallTimeout, func(_ []byte, err error) {
		if err == nil {
			s.m.replOK.Inc()
			rp.finish(true)
			return
		}
		s.m.rpcErrs.Count(rpc.ErrorKind(err))
		var re *rpc.Error
		if errors.As(err, &re) && re.Code == rpc.CodeProtocol {
			s.log.Warnf("replica %s refused a record: %v", t.addr, err)
			rp.finish(false)
			return
		}
		if s.closed.Load() {
			rp.finish(false)
			return
		}
		if isObsolete(err) {
			// Fenced: the replica knows a newer write hash space. Fetch
			// it; if this server is no longer the coordinator the write
			// fails and the gateway retries on the right one.
			go s.refreshHashSpace()
			if w := s.whs.Load(); w.Clock() > rp.wclock.Load() {
				if !w.Owners(rp.h).IsCoordinator(s.cfg.Self) {
					rp.finish(false)
					return
				}
				rp.wclock.Store(w.Clock()) // still the coordinator under it
			}
		} else if !s.stillOwner(t.addr, rp.h) {
			rp.finish(true) // marked fault: the remaining owners hold the write
			return
		}
		if time.Now().After(rp.deadline) {
			s.log.Warnf("replication to %s failed: %v", t.addr, err)
			s.m.replErr.Inc()
			rp.finish(false)
			return
		}
		s.m.replRetry.Inc()
		backoff := time.Duration(20<<min(attempt, 5)) * time.Millisecond
		time.AfterFunc(backoff, func() { rp.send(t, attempt+1) })
	})
}
