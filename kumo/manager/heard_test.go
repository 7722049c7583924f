package manager

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/ring"
)

// TestPartnerHearsServer: a manager whose connection to a server falls
// silent while its partner still hears the server does not mark it fault
// (hunt 29b: a manager cut off from the servers took them out one by one,
// its partner adopted those spaces, the servers ran on one copy and an
// attach after the heal lost the writes). Once the partner no longer
// hears the server either, the manager marks it fault by itself.
func TestPartnerHearsServer(t *testing.T) {
	const timeout = time.Second // keepalives to b every quarter of it: a loaded machine does not stall them that long
	lowAddr, _ := ring.ParseAddr("127.0.0.1:1", 0)
	b := newTestManager(t, Config{Self: lowAddr, KeepAliveTimeout: timeout})
	self, _ := ring.ParseAddr("127.0.0.1:65535", 0)
	a := newTestManager(t, Config{Self: self, Partner: b.Addr().String(), KeepAliveTimeout: timeout, LostTimeout: timeout})
	waitUntil(t, 5*time.Second, "the partner to answer pings", a.partnerUp)

	srv, _ := ring.ParseAddr("127.0.0.1:19800", 19800)
	other, _ := ring.ParseAddr("127.0.0.1:19801", 19800)
	hs := ring.New([]ring.Node{{Addr: srv, Active: true}, {Addr: other, Active: true}}, a.clk.Now())
	for _, m := range []*Manager{a, b} {
		m.mu.Lock()
		m.whs, m.rhs = hs, hs
		m.mu.Unlock()
	}
	toA, toB := dialAsServer(t, a, srv), dialAsServer(t, b, srv)
	keepAlive(t, toA)
	keepAlive(t, toB)

	// Keepalives to b only, as from a server a is cut off from.
	ctx, cancel := context.WithCancel(context.Background())
	var toBStopped atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil && !toBStopped.Load() {
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			if res, err := toB.Call(cctx, wire.MgrKeepAlive, func(b []byte) []byte {
				b = msgpack.AppendArrayHeader(b, 2)
				b = msgpack.AppendUint(b, 0)
				return msgpack.AppendUint(b, 1)
			}); err == nil {
				res.Release()
			}
			ccancel()
			select {
			case <-ctx.Done():
			case <-time.After(timeout / 4):
			}
		}
	}()
	defer func() { cancel(); <-done }()

	heardThere := func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		s := a.servers[srv]
		return s != nil && s.heardThere
	}
	waitUntil(t, 10*time.Second, "a to find the server silent and the partner hearing it", heardThere)
	if w, _ := a.seeds(); !w.IsActive(srv) {
		t.Fatalf("a marked %s fault while its partner hears it", srv)
	}
	// Two more of a's checks: still not fault.
	for i := 0; i < 2; i++ {
		a.lostIfGone(srv)
	}
	if w, _ := a.seeds(); !w.IsActive(srv) || !heardThere() {
		t.Fatalf("a marked %s fault on a later check while its partner hears it", srv)
	}

	// The server falls silent at b too: a marks it fault, by itself or
	// by adopting b's space.
	toBStopped.Store(true)
	waitUntil(t, 10*time.Second, "a to mark the server fault", func() bool {
		w, _ := a.seeds()
		return !w.IsActive(srv) && w.IsActive(other)
	})
}
