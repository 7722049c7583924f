package server

import (
	"context"
	"time"

	"kumofs/internal/logging"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// adopt installs hash spaces received from a manager. A space replaces the
// current one when it is not empty and not older (kumofs's rule for syncs and
// pushes). It reports whether anything changed.
func (s *Server) adopt(w, r *ring.HashSpace) bool {
	s.hsMu.Lock()
	defer s.hsMu.Unlock()
	changed := false
	if w != nil && (s.whs.Load().Empty() || w.Clock() >= s.whs.Load().Clock()) && !w.Empty() {
		if w.Clock() != s.whs.Load().Clock() || !w.Equal(s.whs.Load()) {
			s.whs.Store(w)
			changed = true
		}
	}
	if r != nil && (s.rhs.Load().Empty() || r.Clock() >= s.rhs.Load().Clock()) && !r.Empty() {
		if r.Clock() != s.rhs.Load().Clock() || !r.Equal(s.rhs.Load()) {
			s.rhs.Store(r)
			changed = true
		}
	}
	if changed {
		s.log.Infof("hash space updated: whs %d nodes clock %x, rhs %d nodes clock %x",
			len(s.whs.Load().Nodes()), s.whs.Load().Clock(), len(s.rhs.Load().Nodes()), s.rhs.Load().Clock())
		s.redialActive(s.whs.Load())
	}
	return changed
}

// redialActive ends the reconnect backoff of every peer hs calls active, so
// that replication to a server restarted and re-attached meanwhile does not
// fail with "peer down" for the rest of a 2 s backoff. Called under hsMu;
// takes peersMu (lock order: hsMu, then peersMu).
func (s *Server) redialActive(hs *ring.HashSpace) {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	for _, n := range hs.Nodes() {
		if c := s.peers[n.Addr]; c != nil && n.Active {
			c.Redial()
		}
	}
}

func (s *Server) dialManager(addr string) *rpc.Client {
	return rpc.Dial(addr, rpc.Options{
		Logf:        s.log.Func(logging.Debug),
		Hello:       &rpc.Hello{Addr: s.cfg.Self.Dump(), Role: wire.RoleServer},
		CallTimeout: s.cfg.CallTimeout,
		CloseSilent: true,
		Handler:     rpc.HandlerFunc(s.serveRPC),
		OnUp: func(*rpc.Conn) {
			s.log.Infof("connect success: manager %s", addr)
			// Tell the manager our incarnation at once: a server that
			// stops before its first keepalive would otherwise come back
			// unrecognized as restarted.
			select {
			case s.kaNow <- struct{}{}:
			default:
			}
		},
	})
}

// keepAliveLoop tells every manager we are alive twice a second and fetches
// the hash spaces whenever the manager's differ from ours.
func (s *Server) keepAliveLoop() {
	defer s.loops.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	var heard time.Time // the last keepalive a manager answered
	last := time.Now()
	for {
		if gap := time.Since(last); gap > max(s.cfg.GarbageMax, 5*time.Second) {
			// This process did not run for that long (SIGSTOP, a stalled
			// VM): the cluster went on without it.
			s.log.Warnf("server did not run for %v, longer than the garbage time %v", gap.Round(time.Second), s.cfg.GarbageMax)
			s.setAway()
		}
		last = time.Now()
		s.checkDiskRoom()
		for _, m := range s.mgrs {
			if s.keepAlive(m) {
				heard = time.Now()
			}
		}
		if time.Since(heard) > time.Second && !s.whs.Load().Empty() {
			// No manager answers: they are down or we are cut off from
			// them. If it is us, the managers have marked us fault by now
			// and the other servers know; learn it from them, so that
			// we stop serving reads of data that is no longer ours.
			s.fetchFromPeers()
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.kaNow:
		}
	}
}

// keepAlive tells manager m we are alive; it reports whether m answered.
func (s *Server) keepAlive(m *rpc.Client) bool {
	start := time.Now().UnixNano()
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
	defer cancel()
	var status uint64
	switch {
	case s.corrupt.Load():
		status = wire.HealthCorrupt
	case s.diskFull.Load():
		status = wire.HealthDiskFull
	}
	res, err := m.Call(ctx, wire.MgrKeepAlive, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = msgpack.AppendUint(b, s.clk.Now())
		b = msgpack.AppendUint(b, s.inc)
		return msgpack.AppendUint(b, status)
	})
	if err != nil {
		s.mgrFail.CompareAndSwap(0, time.Now().UnixNano())
		return false
	}
	defer res.Release()
	s.mgrAnswer.Store(time.Now().UnixNano())
	s.mgrFail.Store(0)
	// Result: [whs_clock, rhs_clock, mgr_clock].
	b := res.Bytes()
	n, b, err := msgpack.ReadArrayHeader(b)
	if err != nil || n < 2 {
		return true
	}
	wc, b, err := msgpack.ReadUint(b)
	if err != nil {
		return true
	}
	rc, b, err := msgpack.ReadUint(b)
	if err != nil {
		return true
	}
	if n >= 3 {
		if mc, _, err := msgpack.ReadUint(b); err == nil {
			s.clk.Observe(mc)
		}
	}
	synced := true
	if wc != s.whs.Load().Clock() || rc != s.rhs.Load().Clock() {
		synced = s.fetchHashSpaces(ctx, m)
	}
	if synced {
		// We hold what m held when this keepalive started, or a newer
		// space, or refused its (see adopt): see pauseCheck.
		for {
			old := s.mgrSynced.Load()
			if old >= start || s.mgrSynced.CompareAndSwap(old, start) {
				break
			}
		}
	}
	if wc <= s.whs.Load().Clock() {
		s.mgrConfirm.Store(time.Now().UnixNano()) // see isCurrent
	}
	return true
}

// fetchFromPeers asks the other servers of our write hash space for their
// hash spaces and adopts any newer one. The managers made them; a peer
// only relays what it adopted.
func (s *Server) fetchFromPeers() {
	for _, n := range s.whs.Load().Nodes() {
		if n.Addr == s.cfg.Self {
			continue
		}
		c := s.peer(n.Addr)
		if c == nil {
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, time.Second)
		res, err := c.Call(ctx, wire.SrvHashSpaceRequest, emptyParams)
		cancel()
		if err != nil {
			continue
		}
		sp, err := wire.ReadSpaces(res.Bytes(), 2)
		res.Release()
		if err == nil && s.adopt(sp.W, sp.R) {
			s.log.Infof("hash space learned from server %s: no manager answers", n.Addr)
		}
	}
}

// fetchHashSpaces fetches manager m's hash spaces and adopts them where
// they are newer (adopt); it reports whether m answered both requests.
func (s *Server) fetchHashSpaces(ctx context.Context, m *rpc.Client) bool {
	var w, r *ring.HashSpace
	if res, err := m.Call(ctx, wire.MgrWHashSpaceRequest, emptyParams); err == nil {
		if hs, _, err := ring.ReadSeed(res.Bytes()); err == nil {
			w = hs
		}
		res.Release()
	}
	if res, err := m.Call(ctx, wire.MgrRHashSpaceRequest, emptyParams); err == nil {
		if hs, _, err := ring.ReadSeed(res.Bytes()); err == nil {
			r = hs
		}
		res.Release()
	}
	s.adopt(w, r)
	return w != nil && r != nil
}

// refreshHashSpace fetches the hash spaces from the managers now, at most
// once at a time (a fenced write calls it).
func (s *Server) refreshHashSpace() {
	if !s.refreshing.CompareAndSwap(false, true) {
		return
	}
	defer s.refreshing.Store(false)
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
	defer cancel()
	for _, m := range s.mgrs {
		s.fetchHashSpaces(ctx, m)
	}
}

func emptyParams(b []byte) []byte { return msgpack.AppendArrayHeader(b, 0) }

// coordinatorCheck returns nil when s coordinates hash h under its whs: the
// first active owner. Otherwise it returns the error the gateway reacts to.
func (s *Server) coordinatorCheck(h uint64) (*ring.HashSpace, *ring.HashSpace, error) {
	w := s.whs.Load()
	r := s.rhs.Load()
	if w.Empty() {
		return nil, nil, &rpc.Error{Msg: wire.MsgNotReady}
	}
	c, ok := w.Owners(h).Coordinator()
	if !ok || c.Addr != s.cfg.Self {
		return nil, nil, &rpc.Error{Msg: wire.MsgObsolete}
	}
	return w, r, nil
}

// replicaTargets lists the owners a write for h must reach besides s: the
// active owners in whs, plus (during a rebalance, when rhs differs) the
// active owners in rhs, flagged as by-rhs. A replace is in progress
// while the two spaces' clocks differ; the manager keeps them different
// until the replace finishes (see manager.rhsClock).
func (s *Server) replicaTargets(h uint64, w, r *ring.HashSpace, dst []target) []target {
	wo := w.Owners(h)
	for i := 0; i < wo.Len(); i++ {
		n := wo.At(i)
		if n.Active && n.Addr != s.cfg.Self {
			dst = append(dst, target{addr: n.Addr})
		}
	}
	if r != nil && r.Clock() != w.Clock() && !r.Empty() {
		ro := r.Owners(h)
	next:
		for i := 0; i < ro.Len(); i++ {
			n := ro.At(i)
			if !n.Active || n.Addr == s.cfg.Self {
				continue
			}
			for _, t := range dst {
				if t.addr == n.Addr {
					continue next
				}
			}
			dst = append(dst, target{addr: n.Addr, byRHS: true})
		}
	}
	return dst
}

// stillOwner reports whether a is still an active owner of h in the current
// whs or rhs: replication to a node that stopped being one is not needed.
func (s *Server) stillOwner(a ring.Addr, h uint64) bool {
	for _, hs := range []*ring.HashSpace{s.whs.Load(), s.rhs.Load()} {
		o := hs.Owners(h)
		for i := 0; i < o.Len(); i++ {
			if n := o.At(i); n.Addr == a && n.Active {
				return true
			}
		}
	}
	return false
}
