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
	tail     []byte        // the dedup parameters (appendDedup or nil, then appendDedupAt...), or nil; immutable
	tailN    int           // how many parameters tail holds
	deadline time.Time
	pending  atomic.Int32
	failed   atomic.Bool
	newer    atomic.Uint64 // the largest newer clock a replica kept, 0 if none

	mu   sync.Mutex  // protects sent
	sent []ring.Addr // every replica the write was sent to
	once sync.Once
	done func(error, *rpc.Batch)
}

// replicate sends the record in payload to every other active owner of h
// and calls done once all stored it, or with an error when one could not be
// reached in time. A replica that stops being an active owner meanwhile (the
// managers marked it fault) no longer counts: the write is then safe on the
// owners that remain. done runs on an RPC goroutine or the caller's.
//
// The requests to the replicas are held in sb, if not nil (the batch of
// the read goroutine running the caller, see rpc.Batch), and done gets the
// batch of the goroutine it runs on, if any, to send its reply with.
//
// tail, if not nil, is sent as the last parameters (see appendDedup and
// recentIDs).
func (s *Server) replicate(h uint64, w, r *ring.HashSpace, payload, tail []byte, sb *rpc.Batch, done func(error, *rpc.Batch)) {
	var buf [6]target
	targets := s.replicaTargets(h, w, r, buf[:0])
	if len(targets) == 0 {
		done(nil, sb)
		return
	}
	start := time.Now()
	rp := &replication{s: s, h: h, payload: payload, tail: tail, tailN: countElems(tail), deadline: start.Add(s.cfg.ReplTimeout), done: func(err error, rb *rpc.Batch) {
		s.m.replLat.Observe(since(start))
		done(err, rb)
	}}
	rp.wclock.Store(w.Clock())
	rp.pending.Store(int32(len(targets)))
	for _, t := range targets {
		rp.sent = append(rp.sent, t.addr)
	}
	s.repl.Add(1)
	for _, t := range targets {
		rp.send(t, 0, sb)
	}
}

// widen sends the write to the owners of its key under w and r that it was
// not sent to yet. The caller holds a pending count, so the write cannot
// complete meanwhile.
func (rp *replication) widen(w, r *ring.HashSpace) {
	var buf [6]target
	targets := rp.s.replicaTargets(rp.h, w, r, buf[:0])
	var add []target
	rp.mu.Lock()
next:
	for _, t := range targets {
		for _, a := range rp.sent {
			if a == t.addr {
				continue next
			}
		}
		rp.sent = append(rp.sent, t.addr)
		add = append(add, t)
	}
	rp.pending.Add(int32(len(add)))
	rp.mu.Unlock()
	for _, t := range add {
		rp.send(t, 0, nil)
	}
}

// finish counts one replica's outcome; rb is the batch of the calling
// goroutine, if it has one.
func (rp *replication) finish(ok bool, rb *rpc.Batch) {
	if !ok {
		rp.failed.Store(true)
	}
	if rp.pending.Add(-1) == 0 {
		// The write hash space moved on while the write was out (a
		// replace started): owners it added must hold the write before
		// it is acknowledged, as the replace's copy scan may have passed
		// the key before the write was stored where the scan runs.
		if w := rp.s.whs.Load(); !rp.failed.Load() && w.Clock() > rp.wclock.Load() && w.Owners(rp.h).IsCoordinator(rp.s.cfg.Self) {
			rp.pending.Add(1) // hold the write open while widening
			rp.wclock.Store(w.Clock())
			rp.widen(w, rp.s.rhs.Load())
			rp.finish(true, rb)
			return
		}
		rp.once.Do(func() {
			if rp.failed.Load() {
				rp.done(errReplication, rb)
			} else if c := rp.newer.Load(); c != 0 {
				rp.done(&newerError{clock: c}, rb)
			} else {
				rp.done(nil, rb)
			}
			rp.s.repl.Done()
		})
	}
}

// newerError reports that a replica kept a version of the key with a newer
// clock than the write's: a write an earlier coordinator stored but never
// got acknowledged, stamped by a clock that ran ahead of ours. The
// coordinator must re-stamp its write above that clock and replicate it
// again, or the owners would disagree and some serve the older value.
type newerError struct{ clock uint64 }

func (e *newerError) Error() string { return "server: a replica keeps a newer version" }

func isObsolete(err error) bool {
	var re *rpc.Error
	return errors.As(err, &re) && re.Msg == wire.MsgObsolete
}

func (rp *replication) send(t target, attempt int, sb *rpc.Batch) {
	s := rp.s
	c := s.peer(t.addr)
	if c == nil { // closing
		rp.finish(false, nil)
		return
	}
	var flags uint64
	if t.byRHS {
		flags = 1
	}
	c.GoBatched(sb, wire.SrvReplicateSet, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, uint32(5+rp.tailN))
		b = msgpack.AppendUint(b, s.clk.Now())
		b = msgpack.AppendUint(b, flags)
		b = append(b, rp.payload...)
		b = msgpack.AppendUint(b, rp.wclock.Load())
		return append(b, rp.tail...)
	}, s.cfg.CallTimeout, func(res []byte, err error, rb *rpc.Batch) {
		if err == nil {
			if c, _, perr := msgpack.ReadUint(res); perr == nil && c != 0 {
				// The replica keeps a newer version: re-stamp (see newerError)
				// above it, however far ahead its clock is.
				s.clk.Advance(c)
				for old := rp.newer.Load(); c > old && !rp.newer.CompareAndSwap(old, c); old = rp.newer.Load() {
				}
			}
			s.m.replOK.Inc()
			rp.finish(true, rb)
			return
		}
		s.m.rpcErrs.Count(rpc.ErrorKind(err))
		s.log.Debugf("replicate to %s, attempt %d: %v", t.addr, attempt, err)
		var re *rpc.Error
		if errors.As(err, &re) && re.Code == rpc.CodeProtocol {
			s.log.Warnf("replica %s refused a record: %v", t.addr, err)
			rp.finish(false, rb)
			return
		}
		if s.closed.Load() {
			rp.finish(false, rb)
			return
		}
		if isObsolete(err) {
			// Fenced: the replica knows a newer write hash space. Fetch
			// it; if this server is no longer the coordinator the write
			// fails and the gateway retries on the right one.
			go s.refreshHashSpace()
			if w := s.whs.Load(); w.Clock() > rp.wclock.Load() {
				if !w.Owners(rp.h).IsCoordinator(s.cfg.Self) {
					rp.finish(false, rb)
					return
				}
				rp.wclock.Store(w.Clock()) // still the coordinator under it
				// Owners the newer space added (a replace started) must
				// get the write too: their copy scan may have passed the
				// key before this write reached the server that sends it.
				rp.widen(w, s.rhs.Load())
			}
		} else if !s.stillOwner(t.addr, rp.h) {
			rp.finish(true, rb) // marked fault: the remaining owners hold the write
			return
		}
		if time.Now().After(rp.deadline) {
			s.log.Warnf("replication to %s failed: %v", t.addr, err)
			s.m.replErr.Inc()
			rp.finish(false, rb)
			return
		}
		s.m.replRetry.Inc()
		backoff := time.Duration(20<<min(attempt, 2)) * time.Millisecond // 20 ms to 80 ms, until ReplTimeout
		time.AfterFunc(backoff, func() { rp.send(t, attempt+1, nil) })
	})
}

// countElems returns how many msgpack values b holds.
func countElems(b []byte) int {
	n := 0
	for len(b) > 0 {
		var err error
		if b, err = msgpack.Skip(b); err != nil {
			break
		}
		n++
	}
	return n
}
