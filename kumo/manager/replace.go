package manager

import (
	"time"

	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// attach makes every newcomer an active member of the write hash space: a
// server seen before is recovered, a new one appended.
func (m *Manager) attach() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.newcomers) == 0 {
		return
	}
	ct := m.clk.Now()
	w := m.whs
	fresh := len(w.Nodes()) == 0
	for _, a := range m.newcomers {
		if s := m.servers[a]; s == nil || s.conn == nil || s.full {
			continue // gone again, or cannot store
		}
		if w.Contains(a) {
			w, _ = w.WithRecovered(a, ct)
		} else {
			w = w.WithServerAdded(a, ct)
		}
		if s := m.servers[a]; s.inc != 0 {
			s.accepted = s.inc
		}
	}
	m.newcomers = m.newcomers[:0]
	if n := m.cfg.VirtualNodes; w.VirtualNodesPerServer() != n {
		// The operator changed --virtual-nodes: placement changes, and
		// the replace that follows moves the data.
		w, _ = w.WithVirtualNodes(n, ct)
		m.log.Infof("placement: %d virtual nodes per server", n)
	}
	m.whs = w
	if fresh && len(w.Nodes()) > 0 {
		// This manager knew no hash space (a new cluster, or both
		// managers restarted): the servers' read spaces, which decide
		// what a replace copies, may be older than a server's restart
		// that no manager saw (a server restarted with an empty store
		// while both were down would count as holding its keys), so the
		// replace copies every key to every owner.
		m.fullNext = true
	}
	// The read hash space stays as it is until the copy is done, also when
	// it has no active server: that does not mean that no server holds
	// data (every server may have been marked fault, one of them long
	// before the others, or the managers may have restarted and know
	// nothing), and reading from the new space at once would serve the
	// stale copies the replace is about to bring up to date.
	m.log.Infof("attached: %d servers in the hash space", len(w.Nodes()))
}

// detach removes fault servers from the write hash space.
func (m *Manager) detach() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, ok := m.whs.WithoutFaults(m.clk.Now()); ok {
		m.whs = w
		m.log.Infof("detached fault servers: %d remain", len(w.Nodes()))
	}
}

// startReplace begins the copy phase: every active server adopts the write
// hash space and pushes moved keys to their new owners.
func (m *Manager) startReplace(full bool) {
	m.mu.Lock()
	if n := m.cfg.VirtualNodes; !m.whs.Empty() && m.whs.VirtualNodesPerServer() != n {
		m.whs, _ = m.whs.WithVirtualNodes(n, m.clk.Now())
		m.log.Infof("placement: %d virtual nodes per server", n)
	}
	w := m.whs
	if w.Empty() {
		m.mu.Unlock()
		return
	}
	if m.fullNext {
		full, m.fullNext = true, false
	}
	r := &replaceState{time: w.Clock(), full: full, copying: map[ring.Addr]bool{}, started: time.Now()}
	var conns []*rpc.Conn
	for a, s := range m.servers {
		if s.conn != nil && w.IsActive(a) {
			r.copying[a] = true
			conns = append(conns, s.conn)
		}
	}
	if len(conns) == 0 {
		m.mu.Unlock()
		return
	}
	m.replace = r
	m.mu.Unlock()
	m.m.started.Inc()
	m.log.Infof("start replace copy; full=%v servers=%d time=%s", full, len(conns), clockString(r.time))
	m.broadcast()
	ct := m.clk.Now()
	for _, c := range conns {
		m.sendReplaceMsg(c, r, wire.SrvReplaceCopyStart, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 3)
			b = w.AppendSeed(b)
			b = msgpack.AppendUint(b, ct)
			return msgpack.AppendBool(b, full)
		}, 0)
	}
}

// sendReplaceMsg sends a replace start message and retries it (kumofs did
// not) while the replace is still the current one and the connection open.
func (m *Manager) sendReplaceMsg(c *rpc.Conn, r *replaceState, method uint32, args func([]byte) []byte, attempt int) {
	c.Go(method, args, 5*time.Second, func(_ []byte, err error) {
		if err == nil {
			return
		}
		m.m.rpcErrs.Count(rpc.ErrorKind(err))
		m.mu.Lock()
		current := m.replace == r
		m.mu.Unlock()
		select {
		case <-c.Done():
			current = false
		default:
		}
		if !current || attempt >= 10 || m.closed.Load() {
			m.log.Warnf("replace message %d to %s failed: %v", method, c.RemoteAddr(), err)
			return
		}
		time.AfterFunc(time.Duration(100<<min(attempt, 4))*time.Millisecond, func() {
			m.sendReplaceMsg(c, r, method, args, attempt+1)
		})
	})
}

func clockString(ct uint64) string {
	return clock.Time(ct).UTC().Format("2006-01-02 15:04:05") + " clock " + itoa(uint64(clock.Counter(ct)))
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// handleReplaceEnd records a server's ReplaceCopyEnd / ReplaceDeleteEnd
// [replace_time, clock, ok?] and moves the replace on when all reported.
func (m *Manager) handleReplaceEnd(req *rpc.Request) {
	n, p, err := msgpack.ReadArrayHeader(req.Params)
	if err != nil || n < 1 {
		req.ReplyError(errParams)
		return
	}
	rt, p, err := msgpack.ReadUint(p)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	if n >= 2 {
		var c uint64
		if c, p, err = msgpack.ReadUint(p); err == nil {
			m.clk.ObserveFrom(wire.PeerOf(req.Conn), c)
		}
	}
	ok := true
	if n >= 3 && err == nil {
		if v, _, err := msgpack.ReadBool(p); err == nil {
			ok = v
		}
	}
	req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
	addr, isSrv := req.Conn.Value().(ring.Addr)
	if !isSrv {
		return
	}
	m.mu.Lock()
	m.lastReplaceMsg = time.Now() // a replace runs somewhere (checkUnfinished)
	r := m.replace
	if r == nil || r.time != rt {
		m.mu.Unlock()
		return
	}
	if req.Method == wire.MgrReplaceCopyEnd {
		if !r.copying[addr] {
			m.mu.Unlock()
			return
		}
		delete(r.copying, addr)
		if !ok {
			r.failed = true
		}
		if len(r.copying) > 0 {
			m.mu.Unlock()
			return
		}
		if r.failed {
			m.replace = nil
			auto := m.autoReplace
			m.mu.Unlock()
			m.m.aborted.Inc()
			if auto {
				m.log.Errorf("replace copy failed on some server; retrying")
				m.scheduleAutoReplace()
			} else {
				m.log.Errorf("replace copy failed on some server; run kumoctl replace again")
			}
			return
		}
		m.finishCopy(r) // unlocks
		return
	}
	if !r.deleting[addr] {
		m.mu.Unlock()
		return
	}
	delete(r.deleting, addr)
	if len(r.deleting) > 0 {
		m.mu.Unlock()
		return
	}
	m.replace = nil
	m.mu.Unlock()
	m.m.finished.Inc()
	m.log.Infof("replace finished time(%s) in %v", clockString(r.time), time.Since(r.started).Round(time.Millisecond))
}

// finishCopy switches reads to the new hash space and starts the delete
// phase. Called with m.mu held; it unlocks.
func (m *Manager) finishCopy(r *replaceState) {
	if m.whs.Clock() != r.time {
		// Membership changed during the copy: the data moved for an
		// older space. Copy again for the current one.
		m.replace = nil
		m.mu.Unlock()
		m.log.Infof("hash space changed during replace; replacing again")
		m.startReplace(r.full)
		return
	}
	m.rhs = m.whs
	w := m.whs
	r.deleting = map[ring.Addr]bool{}
	var conns []*rpc.Conn
	for a, s := range m.servers {
		if s.conn != nil && w.IsActive(a) {
			r.deleting[a] = true
			conns = append(conns, s.conn)
		}
	}
	m.mu.Unlock()
	m.log.Infof("replace copy finished; start replace delete")
	m.broadcast()
	ct := m.clk.Now()
	for _, c := range conns {
		m.sendReplaceMsg(c, r, wire.SrvReplaceDeleteStart, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = w.AppendSeed(b)
			return msgpack.AppendUint(b, ct)
		}, 0)
	}
	if len(conns) == 0 {
		m.mu.Lock()
		m.replace = nil
		m.mu.Unlock()
	}
}
