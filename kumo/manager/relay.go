package manager

import (
	"context"
	"sync"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// Hash spaces for gateways from a manager that has none. A manager that
// restarted while its partner was down (or that has none) knows no hash
// space until an operator attaches the servers again (kumofs's procedure;
// with -a it attaches them itself). The servers keep theirs meanwhile and
// the running gateways serve with theirs, but a gateway started now got
// empty spaces from us and answered every request "no server available"
// until the attach (hunt 27b). It gets the newest spaces the connected
// servers hold instead: relayed, not adopted, as a gateway cut off from
// the managers learns them from the servers itself. This manager still
// awaits its attach, and marks no server fault in a space it did not make.

// relayTimeout bounds the wait for each server's answer.
const relayTimeout = time.Second

// replyServersSpaces answers req, a MgrHashSpaceRequest that arrived while
// this manager has no hash space, with the newest write and read spaces of
// the connected servers (still empty if none answers). It returns at once;
// the answer comes from a goroutine of its own.
func (m *Manager) replyServersSpaces(req *rpc.Request) {
	m.mu.Lock()
	var conns []*rpc.Conn
	for _, s := range m.servers {
		if s.conn != nil {
			conns = append(conns, s.conn)
		}
	}
	w, r := m.whs, m.rhs
	m.mu.Unlock()
	m.loops.Add(1)
	go func() {
		defer m.loops.Done()
		// All at once: a hung server costs the answer relayTimeout, not
		// relayTimeout each (a gateway's request gives up after 2 s).
		type spaces struct {
			w, r *ring.HashSpace
			ok   bool
		}
		got := make([]spaces, len(conns))
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sw, sr, ok := serverSpaces(m.ctx, c)
				got[i] = spaces{sw, sr, ok}
			}()
		}
		wg.Wait()
		for _, sp := range got {
			if !sp.ok {
				continue
			}
			if !sp.w.Empty() && sp.w.Clock() > w.Clock() {
				w = sp.w
			}
			if !sp.r.Empty() && sp.r.Clock() > r.Clock() {
				r = sp.r
			}
		}
		req.Reply(func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = w.AppendSeed(b)
			return r.AppendSeed(b)
		})
	}()
}

// serverSpaces asks the server on c for its write and read hash spaces.
func serverSpaces(ctx context.Context, c *rpc.Conn) (w, r *ring.HashSpace, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, relayTimeout)
	defer cancel()
	res, err := c.Call(ctx, wire.SrvHashSpaceRequest, func(b []byte) []byte { return msgpack.AppendArrayHeader(b, 0) })
	if err != nil {
		return nil, nil, false
	}
	defer res.Release()
	sp, err := wire.ReadSpaces(res.Bytes(), 2)
	if err != nil {
		return nil, nil, false
	}
	return sp.W, sp.R, true
}
