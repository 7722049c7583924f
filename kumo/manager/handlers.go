package manager

import (
	"strconv"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

var errParams = &rpc.Error{Code: rpc.CodeProtocol, Msg: "bad parameters"}

func (m *Manager) serveRPC(req *rpc.Request) {
	switch req.Method {
	case wire.MgrKeepAlive:
		m.handleKeepAlive(req)
	case wire.MgrHashSpaceRequest:
		m.mu.Lock()
		m.gateways[req.Conn] = struct{}{}
		w, r := m.whs, m.rhs
		m.mu.Unlock()
		if w.Empty() && r.Empty() {
			m.replyServersSpaces(req)
			return
		}
		req.Reply(func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = w.AppendSeed(b)
			return r.AppendSeed(b)
		})
	case wire.MgrWHashSpaceRequest:
		w, _ := m.seeds()
		req.Reply(w.AppendSeed)
	case wire.MgrRHashSpaceRequest:
		_, r := m.seeds()
		req.Reply(r.AppendSeed)
	case wire.MgrHashSpaceSync:
		m.handleHashSpaceSync(req)
	case wire.MgrIncarnation:
		m.handleIncarnation(req)
	case wire.MgrServerHeard:
		m.handleServerHeard(req)
	case wire.MgrReplaceCopyEnd, wire.MgrReplaceDeleteEnd:
		m.handleReplaceEnd(req)
	case wire.MgrReplaceElection:
		// kumo elects by address; a partner's election request means it
		// wants us to run the replace.
		req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
		go func() { m.attach(); m.detach(); m.startReplace(false) }()
	case wire.MgrGetNodesInfo:
		m.mu.Lock()
		w := m.whs
		nc := append([]ring.Addr(nil), m.newcomers...)
		m.mu.Unlock()
		req.Reply(func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = w.AppendSeed(b)
			b = msgpack.AppendArrayHeader(b, uint32(len(nc)))
			for _, a := range nc {
				b = msgpack.AppendRaw(b, a.Dump())
			}
			return b
		})
	case wire.MgrAttachNewServers:
		replace := boolParam(req.Params, true)
		req.Reply(msgpack.AppendNil)
		go func() {
			m.attach()
			if replace {
				m.startReplace(false)
			} else {
				m.syncPartner()
			}
		}()
	case wire.MgrDetachFaultServers:
		replace := boolParam(req.Params, true)
		req.Reply(msgpack.AppendNil)
		go func() {
			m.detach()
			if replace {
				m.startReplace(false)
			} else {
				m.syncPartner()
			}
		}()
	case wire.MgrStartReplace:
		full := boolParam(req.Params, false)
		req.Reply(msgpack.AppendNil)
		go m.startReplace(full)
	case wire.MgrCreateBackup:
		m.handleBackup(req)
	case wire.MgrSetAutoReplace:
		enable := boolParam(req.Params, false)
		m.mu.Lock()
		changed := m.autoReplace != enable
		m.autoReplace = enable
		m.mu.Unlock()
		if !changed {
			req.Reply(msgpack.AppendNil)
			return
		}
		req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, enable) })
		if enable {
			// As after a membership change: after -Rs, by the leader,
			// attach, detach and replace. Attaching and detaching here
			// at once left the servers waiting for a replace that the
			// partner, deferring to this manager, never started.
			m.scheduleAutoReplace()
		}
	default:
		req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unknown method " + strconv.Itoa(int(req.Method))})
	}
}

// boolParam reads the first parameter as a bool, or def when absent.
func boolParam(p []byte, def bool) bool {
	n, p, err := msgpack.ReadArrayHeader(p)
	if err != nil || n < 1 {
		return def
	}
	v, _, err := msgpack.ReadBool(p)
	if err != nil {
		return def
	}
	return v
}

func (m *Manager) handleKeepAlive(req *rpc.Request) {
	n, p, err := msgpack.ReadArrayHeader(req.Params)
	if err == nil && n >= 1 {
		var c uint64
		if c, p, err = msgpack.ReadUint(p); err == nil {
			m.clk.ObserveFrom(wire.PeerOf(req.Conn), c)
		}
	}
	var inc, health uint64
	if err == nil && n >= 2 {
		inc, p, _ = msgpack.ReadUint(p)
	}
	if err == nil && n >= 3 {
		health, _, _ = msgpack.ReadUint(p)
	}
	restarted, full, roomAgain, corrupt := false, false, false, false
	var addr ring.Addr
	m.mu.Lock()
	if a, ok := req.Conn.Value().(ring.Addr); ok {
		addr = a
		if s := m.servers[a]; s != nil && (s.conn == req.Conn || s.promote(req.Conn)) {
			s.lastSeen = time.Now()
			if inc != 0 {
				if s.inc != 0 && s.inc != inc {
					restarted = true
				}
				s.inc = inc
			}
			isFull := health == wire.HealthDiskFull
			full = isFull && !s.full
			// Room again only from a healthy report: a full server
			// whose store then turned out damaged stays out.
			roomAgain = health == wire.HealthOK && s.full
			s.full = isFull || s.full && !roomAgain
			corrupt = health == wire.HealthCorrupt && m.whs.IsActive(a)
		}
	}
	w, r := m.whs, m.rhs
	m.mu.Unlock()
	if full {
		m.log.Warnf("server %s reports a full disk", addr)
		m.faultConnected(addr, false)
		w, r = m.seeds()
	}
	if corrupt {
		m.log.Warnf("server %s reports damaged data in its store: marking it fault until it is repaired, restarted and attached", addr)
		m.faultConnected(addr, false)
		w, r = m.seeds()
	}
	if roomAgain {
		m.log.Infof("server %s has disk room again", addr)
		m.faultConnected(addr, true)
		w, r = m.seeds()
	}
	if restarted && w.IsActive(addr) {
		// A server that restarted missed writes while it was down: it
		// must not serve until it is attached and brought up to date,
		// unless the partner attached this incarnation already (a change
		// this manager missed while it was paused); see checkRestart.
		m.log.Warnf("server %s restarted", addr)
		if m.partner == nil {
			m.restarted(addr)
			w, r = m.seeds()
		} else {
			go m.checkRestart(addr, inc)
		}
	}
	ct := m.clk.Now()
	req.Reply(func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = msgpack.AppendUint(b, w.Clock())
		b = msgpack.AppendUint(b, r.Clock())
		return msgpack.AppendUint(b, ct)
	})
}

// faultConnected marks a server that is still connected fault in both hash
// spaces (it missed writes, or cannot store them) and, with newcomer, lists
// it as a newcomer awaiting attach.
func (m *Manager) faultConnected(addr ring.Addr, newcomer bool) {
	m.mu.Lock()
	ct := m.clk.Now()
	changed := false
	rct := m.rhsClock(ct) // before whs changes
	if w, ok := m.whs.WithFault(addr, ct); ok {
		m.whs, changed = w, true
	}
	if r, ok := m.rhs.WithFault(addr, rct); ok {
		m.rhs, changed = r, true
	}
	added := false
	if newcomer && !m.whs.IsActive(addr) && !m.isNewcomer(addr) {
		m.newcomers = append(m.newcomers, addr)
		added = true
	}
	if r := m.replace; r != nil && changed && (r.copying[addr] || r.deleting[addr]) {
		m.replace = nil
	}
	m.mu.Unlock()
	if added {
		m.log.Infof("new node %s", addr)
	}
	if changed {
		m.broadcast()
	}
	m.scheduleAutoReplace()
}

// handleHashSpaceSync adopts the partner's hash spaces where they are newer
// than ours (both a change's sync and the partner's ping). The reply says
// whether they were adopted and whether this manager runs automatic
// replaces, which decides who leads them (partnerLeads).
func (m *Manager) handleHashSpaceSync(req *rpc.Request) {
	sp, err := wire.ReadSpaces(req.Params, 2)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	m.clk.ObserveFrom(wire.PeerOf(req.Conn), sp.Clock)
	adopted := m.adopt(sp.W, sp.R)
	m.mu.Lock()
	auto := m.autoReplace
	m.mu.Unlock()
	req.Reply(func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 2)
		b = msgpack.AppendBool(b, adopted)
		return msgpack.AppendBool(b, auto)
	})
}

// partnerAutoReplace reads whether the partner runs automatic replaces
// from its answer to MgrHashSpaceSync; an answer without it (a manager
// older than the field: true or nil) counts as yes, the old assumption.
func partnerAutoReplace(res []byte) bool {
	n, p, err := msgpack.ReadArrayHeader(res)
	if err != nil || n < 2 {
		return true
	}
	if _, p, err = msgpack.ReadBool(p); err != nil {
		return true
	}
	auto, _, err := msgpack.ReadBool(p)
	return err != nil || auto
}

// adopt takes the partner's hash spaces w and r where they are newer than
// ours, tells the servers, and reports whether it took any.
//
// The newcomers awaiting attach are worked out again: a connected server
// that the adopted write space does not have active awaits attach here
// too, whatever this manager knew. Each manager sees keepalives on its own
// connections, so after a server restarted the partner can mark it fault
// (a new incarnation) after this manager already attached it; adopting
// that space made it fault here as well, and, no longer listed as a
// newcomer, no attach on this manager brought it back (only one on the
// partner did).
func (m *Manager) adopt(w, r *ring.HashSpace) bool {
	adopted := false
	var added []ring.Addr
	m.mu.Lock()
	// An adopted hash space's clock is merged whatever the partner's clock
	// was: the next space this manager makes must be newer than it, or the
	// servers would ignore it.
	// Only the clock decides: a space whose servers are all fault (every
	// server stopped) is as real as any, and one older than ours is not
	// taken because ours has no active server.
	if w != nil && w.Clock() > m.whs.Clock() {
		m.whs, adopted = w, true
		m.clk.Advance(w.Clock())
	}
	if r != nil && r.Clock() > m.rhs.Clock() {
		m.rhs, adopted = r, true
		m.clk.Advance(r.Clock())
	}
	if adopted {
		kept := m.newcomers[:0]
		for _, a := range m.newcomers {
			if !m.whs.IsActive(a) {
				kept = append(kept, a)
			}
		}
		m.newcomers = kept
		for a, s := range m.servers {
			if s.conn != nil && !s.full && !m.whs.IsActive(a) && !m.isNewcomer(a) {
				m.newcomers = append(m.newcomers, a)
				added = append(added, a)
			}
		}
	}
	m.mu.Unlock()
	if !adopted {
		return false
	}
	m.log.Infof("hash space adopted from partner")
	for _, a := range added {
		m.log.Infof("new node %s (not active in the partner's hash space)", a)
	}
	m.broadcastLocal()
	if len(added) > 0 {
		m.scheduleAutoReplace()
	}
	return true
}

// broadcastLocal is broadcast without echoing back to the partner.
func (m *Manager) broadcastLocal() { m.broadcastTo(false) }

func (m *Manager) handleBackup(req *rpc.Request) {
	_, p, err := msgpack.ReadArrayHeader(req.Params)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	suffix, _, err := msgpack.ReadRaw(p)
	if err != nil || len(suffix) == 0 {
		req.ReplyError(&rpc.Error{Msg: "empty suffix"})
		return
	}
	if err := wire.CheckBackupSuffix(suffix); err != nil {
		req.ReplyError(&rpc.Error{Msg: err.Error()})
		return
	}
	sfx := append([]byte(nil), suffix...)
	m.mu.Lock()
	var conns []*rpc.Conn
	for _, s := range m.servers {
		if s.conn != nil {
			conns = append(conns, s.conn)
		}
	}
	m.mu.Unlock()
	for _, c := range conns {
		c.Go(wire.SrvCreateBackup, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 1)
			return msgpack.AppendRaw(b, sfx)
		}, 10*time.Second, func([]byte, error) {})
	}
	m.log.Infof("backup %q requested from %d servers", sfx, len(conns))
	req.Reply(msgpack.AppendNil)
}
