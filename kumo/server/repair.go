package server

import (
	"sync"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// Repair after a writer's connection closes. A gateway sends a direct set
// to every owner in turn, and a coordinator replicates a write to every
// replica in turn; if it dies (or its connection to some owner breaks)
// between those writes, some owners store the write and others never hear
// of it. Nobody acknowledged it, but the owners would keep different
// versions of the key until it is written again, and readers that read
// from different owners (embedded gateways read from their own server,
// any gateway fails over) would disagree for good. A rebalance does not
// mend it: its copy phase sends keys to new owners, not between the old.
//
// So a server remembers the keys of the direct sets and replicated writes
// it stored over the last repairWindow (at most repairKeys of them), with
// the connection they came on. When a connection closes, the server
// pushes its current version of each key that came on it within the
// window to the key's other active owners, newest clock wins
// (SrvReplicateBatch, as the copy phase of a rebalance does): every owner
// then holds the newest version any of them had. Each owner that stored
// the write repairs those that did not; an owner that holds an older
// version pushes it in vain.

const (
	repairWindow = 2 * time.Second
	repairKeys   = 1 << 15
)

// writeLog remembers recent direct sets and replicated writes by
// connection.
type writeLog struct {
	mu   sync.Mutex // protects ents, next
	ents []writeEnt
	next int // the slot the next set takes
}

// writeEnt is one remembered write.
type writeEnt struct {
	conn *rpc.Conn // nil: free, or already repaired
	at   int64     // unix nanoseconds
	key  []byte    // the DBKey; its array is reused by the slot's next set
}

// note remembers that a write of dbkey came on conn.
func (l *writeLog) note(conn *rpc.Conn, dbkey []byte) {
	now := time.Now().UnixNano()
	l.mu.Lock()
	if l.ents == nil {
		l.ents = make([]writeEnt, repairKeys)
	}
	e := &l.ents[l.next]
	e.conn, e.at, e.key = conn, now, append(e.key[:0], dbkey...)
	if l.next++; l.next == len(l.ents) {
		l.next = 0
	}
	l.mu.Unlock()
}

// take returns copies of the keys that came on conn within the window
// before now, and forgets every entry of conn.
func (l *writeLog) take(conn *rpc.Conn, now time.Time) [][]byte {
	since := now.Add(-repairWindow).UnixNano()
	var keys [][]byte
	l.mu.Lock()
	for i := range l.ents {
		e := &l.ents[i]
		if e.conn != conn {
			continue
		}
		if e.at >= since {
			keys = append(keys, append([]byte(nil), e.key...))
		}
		e.conn = nil
	}
	l.mu.Unlock()
	return keys
}

// repairAfter runs when conn closed: it pushes this server's version of
// each key a write recently brought on conn to the key's other active
// owners, on a goroutine of its own.
func (s *Server) repairAfter(conn *rpc.Conn) {
	if s.closed.Load() {
		return
	}
	keys := s.recent.take(conn, time.Now())
	if len(keys) == 0 {
		return
	}
	s.repl.Add(1)
	go func() {
		defer s.repl.Done()
		s.repair(keys)
	}()
}

// repair pushes this server's version of each of keys (value or tombstone)
// to the key's other active owners in the write hash space.
func (s *Server) repair(keys [][]byte) {
	batches := make(map[ring.Addr]*batcher)
	w := s.whs.Load()
	for _, k := range keys {
		if s.closed.Load() {
			return
		}
		h, _, ok := wire.SplitDBKey(k)
		if !ok {
			continue
		}
		rec, _, err := s.db.Get(k, nil)
		if err != nil {
			continue // gone since (or the store failed: nothing to push)
		}
		o := w.Owners(h)
		if !o.ContainsActive(s.cfg.Self) {
			continue
		}
		for i := 0; i < o.Len(); i++ {
			n := o.At(i)
			if !n.Active || n.Addr == s.cfg.Self {
				continue
			}
			b := batches[n.Addr]
			if b == nil {
				b = &batcher{s: s, to: n.Addr, what: "repair", ok: s.m.repairOK, fail: s.m.repairErr}
				batches[n.Addr] = b
			}
			b.add(&rec)
		}
	}
	for _, b := range batches {
		b.flush()
	}
}
