package manager

import (
	"context"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// partnerAskTimeout bounds checkRestart's question to the partner; a
// partner that does not answer in time is taken to know nothing.
const partnerAskTimeout = time.Second

// restarted marks a server that came back with a new incarnation fault and
// lists it as a newcomer awaiting attach.
func (m *Manager) restarted(addr ring.Addr) {
	m.log.Warnf("lost node %s (restarted)", addr)
	m.faultConnected(addr, true)
}

// checkRestart decides what to make of incarnation inc of addr, which this
// manager's write space has active and which it knew by another
// incarnation. Usually the server restarted after this manager last
// looked, missed writes, and is marked fault. But a manager that did not
// run for a while (SIGSTOP, a stalled VM) may see the restart long after
// its partner marked the server fault and an operator attached the new
// incarnation: marking it fault then, with a clock newer than the attach,
// would undo the attach in both managers. So the partner is asked first;
// if it attached this very incarnation (its accepted incarnation is inc)
// and its write space has the server active, this manager takes the
// partner's spaces and accepts inc instead. Two managers that see the
// restart at once both answer the old incarnation, and both mark it fault.
func (m *Manager) checkRestart(addr ring.Addr, inc uint64) {
	if m.partnerAttached(addr, inc) {
		m.log.Infof("server %s restarted and the partner attached it already", addr)
		return
	}
	m.restarted(addr)
}

// partnerAttached asks the partner which incarnation of addr it attached
// and reports whether it is inc with addr active in the partner's write
// space, which this manager then holds too (taken from the partner unless
// it had it already). If so it accepts inc under the same lock that
// checks the space, so that no one sees the partner's attach without the
// accepted incarnation.
func (m *Manager) partnerAttached(addr ring.Addr, inc uint64) bool {
	ctx, cancel := context.WithTimeout(m.ctx, partnerAskTimeout)
	defer cancel()
	res, err := m.partner.Call(ctx, wire.MgrIncarnation, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendRaw(b, addr.Dump())
	})
	if err != nil {
		return false
	}
	defer res.Release()
	n, p, err := msgpack.ReadArrayHeader(res.Bytes())
	if err != nil || n < 3 {
		return false
	}
	accepted, p, err := msgpack.ReadUint(p)
	if err != nil || accepted != inc {
		return false
	}
	w, p, err := ring.ReadSeed(p)
	if err != nil || !w.IsActive(addr) {
		return false
	}
	r, _, err := ring.ReadSeed(p)
	if err != nil {
		return false
	}
	m.adopt(w, r)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.whs.Clock() != w.Clock() || !m.whs.IsActive(addr) {
		return false
	}
	if s := m.servers[addr]; s != nil && s.inc == inc {
		s.accepted = inc
	}
	return true
}

// partnerHears asks the partner, if it is up, whether the keepalives of
// the server at addr reach it (MgrServerHeard); a partner that is down,
// slow or too old to know the question hears nothing.
func (m *Manager) partnerHears(addr ring.Addr) bool {
	if !m.partnerUp() {
		return false
	}
	ctx, cancel := context.WithTimeout(m.ctx, partnerAskTimeout)
	defer cancel()
	res, err := m.partner.Call(ctx, wire.MgrServerHeard, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendRaw(b, addr.Dump())
	})
	if err != nil {
		return false
	}
	defer res.Release()
	heard, _, err := msgpack.ReadBool(res.Bytes())
	return err == nil && heard
}

// addrParam reads the [addr_raw] params of the partner's questions about
// one server; on bad params it answers the error and reports false.
func addrParam(req *rpc.Request) (ring.Addr, bool) {
	_, p, err := msgpack.ReadArrayHeader(req.Params)
	if err == nil {
		var raw []byte
		if raw, _, err = msgpack.ReadRaw(p); err == nil {
			var addr ring.Addr
			if addr, err = ring.AddrFromDump(raw); err == nil {
				return addr, true
			}
		}
	}
	req.ReplyError(errParams)
	return ring.Addr{}, false
}

// handleServerHeard answers a partner's partnerHears: whether the server
// is connected here and its last keepalive came within the keepalive
// timeout.
func (m *Manager) handleServerHeard(req *rpc.Request) {
	addr, ok := addrParam(req)
	if !ok {
		return
	}
	m.mu.Lock()
	s := m.servers[addr]
	heard := s != nil && s.conn != nil && time.Since(s.lastSeen) <= m.cfg.KeepAliveTimeout
	m.mu.Unlock()
	req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, heard) })
}

// handleIncarnation answers a partner's checkRestart: the incarnation of
// the server this manager accepted (0 for none) and its hash spaces.
func (m *Manager) handleIncarnation(req *rpc.Request) {
	addr, ok := addrParam(req)
	if !ok {
		return
	}
	var accepted uint64
	m.mu.Lock()
	if s := m.servers[addr]; s != nil {
		accepted = s.accepted
	}
	w, r := m.whs, m.rhs
	m.mu.Unlock()
	req.Reply(func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = msgpack.AppendUint(b, accepted)
		b = w.AppendSeed(b)
		return r.AppendSeed(b)
	})
}
