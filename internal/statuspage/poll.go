package statuspage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
)

// ErrBadReply is returned by Poll for a server answer of the wrong shape.
var ErrBadReply = errors.New("statuspage: bad reply")

// Poller asks kumo-servers for the figures the page shows (items, the
// get/set/delete counters and the replace state, kumostat's GetStatus
// queries) and turns the counters into rates. It keeps one reconnecting
// RPC client per server; Close closes them. It is safe for concurrent use:
// concurrent Fills (two browsers) run one after the other, so the rates
// stay meaningful. Lock order: fillMu, then mu.
type Poller struct {
	timeout time.Duration
	rates   Rates

	fillMu sync.Mutex // serializes Fill

	mu      sync.Mutex // protects clients
	clients map[string]*rpc.Client
}

// NewPoller returns a Poller whose queries to one server give up after
// timeout (a hung server shows "—" instead of stalling the page).
func NewPoller(timeout time.Duration) *Poller {
	return &Poller{timeout: timeout, clients: make(map[string]*rpc.Client)}
}

// Fill polls every server of servers at once and sets its Items, GetRate,
// SetRate, DelRate and Replace. A server that does not answer within the
// timeout, or is not active, gets unknown values (-1, ""). Clients of
// servers no longer listed are closed. at is the time the rates are
// computed with (time.Now() in the manager).
func (p *Poller) Fill(ctx context.Context, servers []Server, at time.Time) {
	p.fillMu.Lock()
	defer p.fillMu.Unlock()
	var wg sync.WaitGroup
	keep := make([]string, 0, len(servers))
	for i := range servers {
		s := &servers[i]
		s.Items, s.GetRate, s.SetRate, s.DelRate, s.Replace = -1, -1, -1, -1, ""
		if s.State != StateActive {
			continue
		}
		keep = append(keep, s.Addr)
		c := p.client(s.Addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := poll(ctx, c, p.timeout)
			if err != nil {
				return
			}
			s.Items = int64(v.items)
			s.Replace = v.replace
			s.GetRate, s.SetRate, s.DelRate = p.rates.Observe(s.Addr, at, v.get, v.set, v.del)
		}()
	}
	wg.Wait()
	p.rates.Forget(keep)
	p.mu.Lock()
	for a, c := range p.clients {
		if !contains(keep, a) {
			c.Close()
			delete(p.clients, a)
		}
	}
	p.mu.Unlock()
}

// Close closes every client.
func (p *Poller) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.clients {
		c.Close()
		delete(p.clients, a)
	}
}

func (p *Poller) client(addr string) *rpc.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[addr]
	if !ok {
		c = rpc.Dial(addr, rpc.Options{CallTimeout: p.timeout, DialTimeout: p.timeout, Logf: func(string, ...any) {}})
		p.clients[addr] = c
	}
	return c
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

type figures struct {
	items, get, set, del uint64
	replace              string
}

// poll asks one server for its figures; every query must answer.
func poll(ctx context.Context, c *rpc.Client, timeout time.Duration) (figures, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var f figures
	for _, q := range []struct {
		code uint32
		dst  *uint64
	}{
		{wire.StatCmdGet, &f.get}, {wire.StatCmdSet, &f.set}, {wire.StatCmdDelete, &f.del},
		{wire.StatDBItems, &f.items},
	} {
		v, isNil, err := status(ctx, c, q.code)
		if err != nil {
			return f, err
		}
		if isNil {
			return f, fmt.Errorf("%w: nil for status %d", ErrBadReply, q.code)
		}
		*q.dst = v
	}
	v, isNil, err := status(ctx, c, wire.StatReplace)
	if err != nil {
		return f, err
	}
	f.replace = replState(v, isNil)
	return f, nil
}

// status calls GetStatus(code) and reads an unsigned answer.
func status(ctx context.Context, c *rpc.Client, code uint32) (v uint64, isNil bool, err error) {
	res, err := c.Call(ctx, wire.SrvGetStatus, func(b []byte) []byte {
		return msgpack.AppendUint(msgpack.AppendArrayHeader(b, 1), uint64(code))
	})
	if err != nil {
		return 0, false, err
	}
	defer res.Release()
	b := res.Bytes()
	if msgpack.IsNil(b) {
		return 0, true, nil
	}
	v, _, err = msgpack.ReadUint(b)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %w", ErrBadReply, err)
	}
	return v, false, nil
}

// replState names the STAT_REPLACE bits as kumostat replstat does.
func replState(v uint64, isNil bool) string {
	switch {
	case isNil:
		return "nil"
	case v&wire.ReplInactive != 0:
		return "inactive"
	case v&wire.ReplDeleting != 0:
		return "Deleting"
	case v&wire.ReplCopying != 0:
		return "Copying"
	case v&wire.ReplWait != 0:
		return "WAIT"
	}
	return "ready"
}
