package gateway

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// fakeCluster starts n RPC servers on 127.0.0.1 whose requests serve
// calls (i: the server's index) and a gateway whose hash spaces hold them
// all, active. Everything stops with the test.
func fakeCluster(t *testing.T, n int, serve func(i int, req *rpc.Request)) (*Gateway, []ring.Addr) {
	t.Helper()
	addrs := make([]ring.Addr, n)
	var nodes []ring.Node
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &rpc.Server{Handler: rpc.HandlerFunc(func(req *rpc.Request) { serve(i, req) })}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		addrs[i], _ = ring.ParseAddr(l.Addr().String(), 19800)
		nodes = append(nodes, ring.Node{Addr: addrs[i], Active: true})
	}
	g := testGateway()
	g.cfg.CallTimeout = 5 * time.Second
	g.cfg.WriteTimeout = 5 * time.Second
	g.cfg.RetryTimeout = 3 * time.Second
	g.ctx, g.cancel = context.WithCancel(context.Background())
	m := map[ring.Addr]*rpc.Client{}
	g.servers.Store(&m)
	hs := ring.New(nodes, 1)
	g.rhs.Store(hs)
	g.whs.Store(hs)
	t.Cleanup(func() {
		g.cancel()
		for _, c := range *g.servers.Load() {
			c.Close()
		}
	})
	return g, addrs
}

// answerClock answers a flush_all's question for a server's clock
// (gateway.flushPoint) with clk and reports whether req was that question.
func answerClock(req *rpc.Request, clk uint64) bool {
	if req.Method != wire.SrvGetStatus {
		return false
	}
	req.Reply(func(b []byte) []byte { return msgpack.AppendUint(b, clk) })
	return true
}

// Ensure that a flush_all "now" sends every server the same flush point,
// one above the largest of the servers' clocks, and a delayed one none.
func TestFlushAllPoint(t *testing.T) {
	clocks := []uint64{10 << 32, 50 << 32, 30 << 32}
	var mu sync.Mutex
	var got [][3]uint64
	g, _ := fakeCluster(t, len(clocks), func(i int, req *rpc.Request) {
		if answerClock(req, clocks[i]) {
			return
		}
		var p [3]uint64
		_, rest, err := msgpack.ReadArrayHeader(req.Params)
		for j := range p {
			if err == nil {
				p[j], rest, err = msgpack.ReadUint(rest)
			}
		}
		if req.Method != wire.SrvFlush || err != nil {
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
			return
		}
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
		req.Reply(msgpack.AppendNil)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.doFlushAll(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(clocks) {
		t.Fatalf("%d flushes, want %d", len(got), len(clocks))
	}
	for _, p := range got {
		if p[0] != 0 || p[2] != 50<<32+1 {
			t.Fatalf("flush [at, clock, point] = %x, want at 0 and point %x", p, uint64(50<<32+1))
		}
	}
	got = nil
	if err := g.doFlushAll(ctx, 60); err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		if p[0] == 0 || p[2] != 0 {
			t.Fatalf("delayed flush [at, clock, point] = %x, want an at and no point", p)
		}
	}
}

// Ensure that flush_all asks every active server even when one fails, and
// reports the failure: a server that cannot flush (here the first one
// asked) must not leave the others unflushed.
func TestFlushAllEveryServer(t *testing.T) {
	const n = 3
	var flushes [n]atomic.Int32
	var failing atomic.Int32 // index of the server that refuses
	g, addrs := fakeCluster(t, n, func(i int, req *rpc.Request) {
		if answerClock(req, 1) {
			return
		}
		if req.Method != wire.SrvFlush {
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
			return
		}
		if int(failing.Load()) == i {
			req.ReplyError(&rpc.Error{Msg: "store: disk full"})
			return
		}
		flushes[i].Add(1)
		req.Reply(msgpack.AppendNil)
	})
	first := g.activeServers()[0]
	for i, a := range addrs {
		if a == first {
			failing.Store(int32(i))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := g.doFlushAll(ctx, 0)
	var re *rpc.Error
	if !errors.As(err, &re) || re.Msg != "store: disk full" {
		t.Fatalf("flush_all with a failing server: %v", err)
	}
	for i := range n {
		want := int32(1)
		if i == int(failing.Load()) {
			want = 0
		}
		if got := flushes[i].Load(); got != want {
			t.Errorf("server %d flushed %d times, want %d", i, got, want)
		}
	}
}

// Ensure that flush_all also flushes a server that appears in the hash
// spaces while it runs (one attached meanwhile, which may hold a rebalance
// copy made before its sources flushed), and that a server failing the
// flush counts as flushed once it leaves the hash spaces (marked fault: the
// replace that brings it back copies the tombstones to it).
func TestFlushAllLateAndLeavingServers(t *testing.T) {
	const n = 4
	var flushes [n]atomic.Int32
	var g *Gateway
	var addrs []ring.Addr
	var once sync.Once
	g, addrs = fakeCluster(t, n, func(i int, req *rpc.Request) {
		if answerClock(req, 1) {
			return
		}
		if req.Method != wire.SrvFlush {
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
			return
		}
		if i == 3 { // failing, then marked fault; server 2 attached meanwhile
			once.Do(func() {
				hs := ring.New([]ring.Node{{Addr: addrs[0], Active: true}, {Addr: addrs[1], Active: true},
					{Addr: addrs[2], Active: true}, {Addr: addrs[3]}}, 2)
				g.whs.Store(hs)
				g.rhs.Store(hs)
			})
			req.ReplyError(&rpc.Error{Msg: "rpc: connection lost"})
			return
		}
		flushes[i].Add(1)
		req.Reply(msgpack.AppendNil)
	})
	hs := ring.New([]ring.Node{{Addr: addrs[0], Active: true}, {Addr: addrs[1], Active: true},
		{Addr: addrs[3], Active: true}}, 1)
	g.whs.Store(hs)
	g.rhs.Store(hs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.doFlushAll(ctx, 0); err != nil {
		t.Fatalf("flush_all: %v", err)
	}
	for i, want := range []int32{1, 1, 1, 0} {
		if got := flushes[i].Load(); got != want {
			t.Errorf("server %d flushed %d times, want %d", i, got, want)
		}
	}
}
