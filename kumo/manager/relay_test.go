package manager

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"kumofs/internal/loglimit"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// Ensure that a manager without hash spaces answers a gateway's request
// with the newest spaces its connected servers hold, without adopting
// them, and that one with spaces answers with its own (hunt 27b: a gateway
// started after the lone manager restarted served nothing until an
// attach).
func TestRelayServersSpaces(t *testing.T) {
	m := newTestManager(t, Config{})
	a, _ := ring.ParseAddr("127.0.0.1:19821", 19800)
	b, _ := ring.ParseAddr("127.0.0.1:19822", 19800)
	older := ring.New([]ring.Node{{Addr: a, Active: true}}, 100)
	newer := ring.New([]ring.Node{{Addr: a, Active: true}, {Addr: b, Active: true}}, 200)
	serve := func(w, r *ring.HashSpace) rpc.Handler {
		return rpc.HandlerFunc(func(req *rpc.Request) {
			if req.Method != wire.SrvHashSpaceRequest {
				req.ReplyError(&rpc.Error{Msg: "unexpected"})
				return
			}
			req.Reply(func(p []byte) []byte {
				p = msgpack.AppendArrayHeader(p, 2)
				p = w.AppendSeed(p)
				return r.AppendSeed(p)
			})
		})
	}
	for _, s := range []struct {
		addr ring.Addr
		w, r *ring.HashSpace
	}{{a, older, older}, {b, newer, older}} {
		cl := rpc.Dial(m.Addr().String(), rpc.Options{
			CallTimeout: 5 * time.Second,
			Hello:       &rpc.Hello{Addr: s.addr.Dump(), Role: wire.RoleServer},
			Handler:     serve(s.w, s.r),
		})
		t.Cleanup(func() { cl.Close() })
		keepAlive(t, cl)
	}
	gw := rpc.Dial(m.Addr().String(), rpc.Options{CallTimeout: 5 * time.Second})
	t.Cleanup(func() { gw.Close() })
	spaces := func() (w, r *ring.HashSpace) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := gw.Call(ctx, wire.MgrHashSpaceRequest, func(p []byte) []byte { return msgpack.AppendArrayHeader(p, 0) })
		if err != nil {
			t.Fatal(err)
		}
		defer res.Release()
		_, p, err := msgpack.ReadArrayHeader(res.Bytes())
		if err == nil {
			w, p, err = ring.ReadSeed(p)
		}
		if err == nil {
			r, _, err = ring.ReadSeed(p)
		}
		if err != nil {
			t.Fatal(err)
		}
		return w, r
	}
	w, r := spaces()
	if w.Clock() != 200 || !w.Equal(newer) || r.Clock() != 100 || !r.Equal(older) {
		t.Fatalf("relayed spaces: w clock %d (%d nodes), r clock %d; want the newest of each: 200 (2), 100", w.Clock(), w.NumNodes(), r.Clock())
	}
	m.mu.Lock()
	empty := m.whs.Empty() && m.rhs.Empty()
	m.mu.Unlock()
	if !empty {
		t.Fatal("the manager adopted the relayed spaces")
	}
	// Once the manager has spaces of its own (an attach), they are the answer.
	m.attach()
	w, _ = spaces()
	m.mu.Lock()
	own := m.whs
	m.mu.Unlock()
	if w.Empty() || !w.Equal(own) || w.Clock() != own.Clock() {
		t.Fatalf("after attach: w clock %d, want the manager's own %d", w.Clock(), own.Clock())
	}
}

// Ensure that hellos from strangers write a bounded number of lines: one
// per connection let anything that reaches the port write 25,000 a second
// (hunt 27c).
func TestHelloLinesLimited(t *testing.T) {
	m := newTestManager(t, Config{})
	var mu sync.Mutex
	var lines []string
	m.helloWarn = loglimit.New(func(f string, a ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(f, a...))
		mu.Unlock()
	})
	for i := 0; i < 3*loglimit.Burst; i++ {
		cl := rpc.Dial(m.Addr().String(), rpc.Options{
			CallTimeout: 5 * time.Second,
			Hello:       &rpc.Hello{Addr: []byte("not an address"), Role: wire.RoleServer},
		})
		// The hello goes first; a call after it is answered once the
		// manager has read (and logged) it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := cl.Call(ctx, wire.MgrGetNodesInfo, func(p []byte) []byte { return msgpack.AppendArrayHeader(p, 0) })
		cancel()
		if err == nil {
			res.Release()
		}
		cl.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != loglimit.Burst {
		t.Fatalf("%d lines for %d bad hellos, want %d: %q", len(lines), 3*loglimit.Burst, loglimit.Burst, lines)
	}
}
