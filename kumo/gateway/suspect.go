package gateway

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

// The gateway's own failure detector. The managers notice dead and hung
// servers; but a link between this gateway and one server can fail while
// the server is fine for everyone else. A server whose calls from here
// time out or cannot connect twice in a row is suspect for a few seconds:
// reads try the other owners first, and writes it coordinates go through
// another owner (SrvRelay) instead of waiting for timeouts.

const (
	suspectAfter = 2               // consecutive transport failures
	suspectFor   = 5 * time.Second // then skipped for this long
)

type health struct {
	fails atomic.Int32
	until atomic.Int64 // unix nanoseconds; 0 = healthy
}

// suspects maps ring.Addr to *health.
type suspects struct{ m sync.Map }

func (s *suspects) get(a ring.Addr) *health {
	if h, ok := s.m.Load(a); ok {
		return h.(*health)
	}
	h, _ := s.m.LoadOrStore(a, new(health))
	return h.(*health)
}

// transportFailure reports whether err says nothing about the request but
// that the server could not be reached in time.
func transportFailure(err error) bool {
	return errors.Is(err, rpc.ErrTimeout) || errors.Is(err, rpc.ErrPeerDown) ||
		errors.Is(err, rpc.ErrConnLost) || errors.Is(err, rpc.ErrClosed)
}

// note records the outcome of a call to a.
func (s *suspects) note(a ring.Addr, err error) {
	if err == nil || !transportFailure(err) {
		if h, ok := s.m.Load(a); ok {
			h := h.(*health)
			if h.fails.Load() != 0 {
				h.fails.Store(0)
				h.until.Store(0)
			}
		}
		return
	}
	h := s.get(a)
	if h.fails.Add(1) >= suspectAfter {
		h.until.Store(time.Now().Add(suspectFor).UnixNano())
	}
}

// suspect reports whether a should be avoided now.
func (s *suspects) suspect(a ring.Addr) bool {
	h, ok := s.m.Load(a)
	if !ok {
		return false
	}
	u := h.(*health).until.Load()
	return u != 0 && time.Now().UnixNano() < u
}

// relayArgs wraps args for SrvRelay to target.
func relayArgs(target ring.Addr, method uint32, args func([]byte) []byte) func([]byte) []byte {
	return func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = msgpack.AppendRaw(b, target.Dump())
		b = msgpack.AppendUint(b, uint64(method))
		return args(b)
	}
}

// healthLoop pings every active server twice a second with a cheap status
// call, so that a link that stopped carrying packets (no error, just
// silence) is found within about two seconds even without traffic, and
// the calls waiting on it are failed at once (the connection is dropped)
// instead of running into their deadlines.
func (g *Gateway) healthLoop() {
	defer g.loops.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		for _, a := range g.activeServers() {
			a := a
			c := g.server(a)
			if c == nil {
				return
			}
			c.Go(wire.SrvGetStatus, pingArgs, g.cfg.CallTimeout, func(_ []byte, err error) {
				was := g.sus.suspect(a)
				g.sus.note(a, err)
				if !was && g.sus.suspect(a) {
					g.log.Warnf("server %s does not answer this gateway; routing around it", a)
					go g.dropServer(a)
				}
			})
		}
	}
}

func pingArgs(b []byte) []byte {
	b = msgpack.AppendArrayHeader(b, 1)
	return msgpack.AppendUint(b, wire.StatTime)
}

// dropServer closes the connection to a, failing the calls that wait on
// it; the next call dials afresh.
func (g *Gateway) dropServer(a ring.Addr) {
	g.srvMu.Lock()
	old := *g.servers.Load()
	c := old[a]
	if c == nil {
		g.srvMu.Unlock()
		return
	}
	m := make(map[ring.Addr]*rpc.Client, len(old))
	for k, v := range old {
		if k != a {
			m[k] = v
		}
	}
	g.servers.Store(&m)
	g.srvMu.Unlock()
	c.Close()
}
