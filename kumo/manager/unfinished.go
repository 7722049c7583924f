package manager

import (
	"context"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
)

// A replace lives in the manager that started it. When that manager dies
// in the middle, its partner (or itself, restarted) holds a write hash
// space the read space never caught up with, and nothing started the
// replace again: the servers waited for it for good (kumostat replstat
// WAIT). The leading manager therefore checks, once such a state has
// lasted unfinishedAfter with no replace running here and no replace
// message from a server meanwhile, whether the servers wait for a replace
// of this write space: if every connected active server started the copy
// of it (StatCopyTime) and none copies or deletes now, it starts one,
// which finishes the job. A write space attached without a replace
// (attach-noreplace) had no copy started, and is left for the operator.
const unfinishedAfter = 10 * time.Second

// checkUnfinished runs on the watchdog's ticks.
func (m *Manager) checkUnfinished(now time.Time) {
	m.mu.Lock()
	pending := m.replace == nil && !m.whs.Empty() && (m.whs.Clock() != m.rhs.Clock() || !m.whs.Equal(m.rhs))
	if !pending || m.checking {
		if !pending {
			m.pendingSince = time.Time{}
		}
		m.mu.Unlock()
		return
	}
	if m.pendingSince.IsZero() || m.lastReplaceMsg.After(m.pendingSince) {
		m.pendingSince = now
	}
	if now.Sub(m.pendingSince) < unfinishedAfter {
		m.mu.Unlock()
		return
	}
	var conns []*rpc.Conn
	for a, s := range m.servers {
		if s.conn != nil && m.whs.IsActive(a) {
			conns = append(conns, s.conn)
		}
	}
	m.checking = true
	wc := m.whs.Clock()
	m.mu.Unlock()
	if len(conns) == 0 || m.partnerLeads() {
		m.doneChecking(now)
		return
	}
	m.loops.Add(1)
	go func() {
		defer m.loops.Done()
		waiting := m.serversWait(conns, wc)
		m.doneChecking(time.Now())
		if waiting {
			m.log.Warnf("a replace was left unfinished (every server waits for it): starting one")
			m.startReplace(false)
		}
	}()
}

// doneChecking ends a check; the next one waits unfinishedAfter again.
func (m *Manager) doneChecking(now time.Time) {
	m.mu.Lock()
	m.checking = false
	m.pendingSince = now
	m.mu.Unlock()
}

// serversWait reports whether every one of conns started the replace
// copy of the write space with clock wc and now neither copies nor deletes.
func (m *Manager) serversWait(conns []*rpc.Conn, wc uint64) bool {
	for _, c := range conns {
		copied, err1 := m.serverStat(c, wire.StatCopyTime)
		state, err2 := m.serverStat(c, wire.StatReplace)
		if err1 != nil || err2 != nil || copied != wc || state&(wire.ReplCopying|wire.ReplDeleting) != 0 {
			return false
		}
	}
	return true
}

// serverStat asks a server for one SrvGetStatus figure.
func (m *Manager) serverStat(c *rpc.Conn, code uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(m.ctx, 3*time.Second)
	defer cancel()
	res, err := c.Call(ctx, wire.SrvGetStatus, func(b []byte) []byte {
		return msgpack.AppendUint(msgpack.AppendArrayHeader(b, 1), code)
	})
	if err != nil {
		return 0, err
	}
	defer res.Release()
	v, _, err := msgpack.ReadUint(res.Bytes())
	return v, err
}
