package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// errBadReply means an answer does not have the expected shape.
var errBadReply = errors.New("bad reply")

// watcher samples a set of servers, found in a manager's whs (mgr set) or
// given on the command line. It keeps one reconnecting client per server
// and the previous sample of each for the rates. A watcher is used by one
// goroutine; round starts and waits for its own.
type watcher struct {
	mgr     *session    // nil: watch servers
	servers []ring.Addr // the servers watched (last known list with mgr)
	timeout time.Duration

	sessions map[ring.Addr]*session
	prev     map[ring.Addr]sample // last good sample per server
}

func newWatcher(mgr *ring.Addr, servers []ring.Addr, timeout time.Duration) *watcher {
	w := &watcher{servers: servers, timeout: timeout,
		sessions: map[ring.Addr]*session{}, prev: map[ring.Addr]sample{}}
	if mgr != nil {
		w.mgr = dial(*mgr, timeout)
	}
	return w
}

// close closes every client.
func (w *watcher) close() {
	if w.mgr != nil {
		w.mgr.close()
	}
	for _, s := range w.sessions {
		s.close()
	}
}

// round takes one sample of every server, all at once, and returns the
// frame to show; at is the sample time the rates are computed with.
func (w *watcher) round(at time.Time) *frame {
	f := &frame{now: at}
	if w.mgr != nil {
		f.source = "manager " + w.mgr.addr.String()
		servers, err := w.mgr.nodes()
		if err != nil {
			f.err = err
		} else {
			w.servers = servers
		}
	}
	keep := make(map[ring.Addr]bool, len(w.servers))
	for _, a := range w.servers {
		keep[a] = true
		if w.sessions[a] == nil {
			w.sessions[a] = dial(a, w.timeout)
		}
	}
	for a, s := range w.sessions {
		if !keep[a] {
			s.close()
			delete(w.sessions, a)
			delete(w.prev, a)
		}
	}

	f.rows = make([]row, len(w.servers))
	var wg sync.WaitGroup
	for i, a := range w.servers {
		r := &f.rows[i]
		r.addr = a.String()
		s := w.sessions[a]
		wg.Go(func() { r.cur, r.err = s.sample(at) })
	}
	wg.Wait()
	for i, a := range w.servers {
		r := &f.rows[i]
		if r.err != nil {
			continue
		}
		if p, ok := w.prev[a]; ok {
			r.prev = &p
		}
		r.setRates()
		w.prev[a] = r.cur
	}
	return f
}

// session is a connection to one daemon.
type session struct {
	addr    ring.Addr
	c       *rpc.Client
	timeout time.Duration

	mu      sync.Mutex // protects downErr
	downErr error      // the last connection error the client reported
}

func dial(addr ring.Addr, timeout time.Duration) *session {
	s := &session{addr: addr, timeout: timeout}
	s.c = rpc.Dial(addr.AddrPort().String(), rpc.Options{
		CallTimeout: timeout,
		DialTimeout: timeout,
		Logf:        func(string, ...any) {}, // errors are shown in the rows
		OnDown: func(_ int, err error) {
			s.mu.Lock()
			s.downErr = err
			s.mu.Unlock()
		},
	})
	return s
}

func (s *session) close() { s.c.Close() }

// call makes one call and returns a copy of the result.
func (s *session) call(ctx context.Context, method uint32, params func([]byte) []byte) ([]byte, error) {
	res, err := s.c.Call(ctx, method, params)
	if err != nil {
		var re *rpc.Error
		if errors.As(err, &re) || errors.Is(err, rpc.ErrTimeout) {
			return nil, err
		}
		s.mu.Lock()
		if s.downErr != nil && errors.Is(err, rpc.ErrPeerDown) {
			err = s.downErr
		}
		s.mu.Unlock()
		return nil, fmt.Errorf("cannot reach: %w", err)
	}
	defer res.Release()
	return append([]byte(nil), res.Bytes()...), nil
}

// nodes asks the manager for its whs and returns every attached server,
// active or not, in node-list order.
func (s *session) nodes() ([]ring.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	b, err := s.call(ctx, wire.MgrGetNodesInfo, func(b []byte) []byte { return msgpack.AppendArrayHeader(b, 0) })
	if err != nil {
		return nil, fmt.Errorf("manager %s: %w", s.addr, rpc.WrongRole(err, "manager"))
	}
	n, b, err := msgpack.ReadArrayHeader(b)
	if err != nil || n < 2 {
		return nil, fmt.Errorf("manager %s: %w: GetNodesInfo is not [wseed, newcomers]", s.addr, errBadReply)
	}
	hs, _, err := ring.ReadSeed(b)
	if err != nil {
		return nil, fmt.Errorf("manager %s: %w: %w", s.addr, errBadReply, err)
	}
	nodes := hs.Nodes()
	out := make([]ring.Addr, len(nodes))
	for i, nd := range nodes {
		out[i] = nd.Addr
	}
	return out, nil
}

// statusCodes are the GetStatus codes one sample asks for, in order.
var statusCodes = [...]uint32{wire.StatCmdGet, wire.StatCmdSet, wire.StatCmdDelete, wire.StatDBItems, wire.StatClockTime, wire.StatReplace}

// sample asks the server for its counters, items, clock and replace state,
// all within one timeout.
func (s *session) sample(at time.Time) (sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	smp := sample{at: at}
	dst := [...]*uint64{&smp.get, &smp.set, &smp.del, &smp.items, &smp.clock}
	for i, code := range statusCodes {
		b, err := s.call(ctx, wire.SrvGetStatus, func(b []byte) []byte {
			return msgpack.AppendUint(msgpack.AppendArrayHeader(b, 1), uint64(code))
		})
		if err != nil {
			return sample{}, rpc.WrongRole(err, "server")
		}
		if code == wire.StatReplace {
			smp.repl, err = replstat(b)
		} else if msgpack.IsNil(b) {
			err = errors.New("nil")
		} else {
			*dst[i], _, err = msgpack.ReadUint(b)
		}
		if err != nil {
			return sample{}, fmt.Errorf("%w: status %d: %w", errBadReply, code, err)
		}
	}
	return smp, nil
}

// replstat names the STAT_REPLACE bits as kumostat does; nil is "?".
func replstat(b []byte) (string, error) {
	if msgpack.IsNil(b) {
		return "?", nil
	}
	v, _, err := msgpack.ReadUint(b)
	if err != nil {
		return "", err
	}
	switch {
	case v&wire.ReplInactive != 0:
		return "inactive", nil
	case v&wire.ReplDeleting != 0:
		return "Deleting", nil
	case v&wire.ReplCopying != 0:
		return "Copying", nil
	case v&wire.ReplWait != 0:
		return "WAIT", nil
	}
	return "ready", nil
}
