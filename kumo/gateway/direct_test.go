package gateway

import (
	"context"
	"errors"
	"testing"
	"time"

	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/memcache"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// directReply encodes a SrvSetDirect answer.
func directReply(stored bool, ct uint64) []byte {
	b := msgpack.AppendArrayHeader(nil, 2)
	b = msgpack.AppendBool(b, stored)
	return msgpack.AppendUint(b, ct)
}

// runDirect completes a direct set stamped 100 with one answer per owner
// and returns what its done got and how often it was called.
func runDirect(g *Gateway, answers [][]byte, errs []error) (cas uint64, err error, calls int) {
	d := &directSet{g: g, ct: 100}
	d.args, d.onReply = d.appendArgs, d.finish
	d.done = func(c uint64, e error) { cas, err = c, e; calls++ }
	d.pending.Store(int32(len(answers)))
	for i := range answers {
		d.finish(answers[i], errs[i])
	}
	return cas, err, calls
}

func directGateway() *Gateway {
	return testGateway()
}

// Ensure that a direct set succeeds, with its stamp as the CAS unique,
// only when every owner stored it; that any refusal, malformed answer or
// RPC error hands it back to memcache (errDirectRefused: sent again
// through the coordinator); that the gateway's clock follows the owners'
// clocks; and that a server that does not know the method turns direct
// sets off.
func TestDirectFinish(t *testing.T) {
	ahead := clock.Make(uint32(clock.Seconds(clock.New(clock.Options{}).Now())+5), 9)
	tests := []struct {
		name     string
		answers  [][]byte
		errs     []error
		ok       bool
		noDirect bool
	}{
		{"all stored", [][]byte{directReply(true, 1), directReply(true, 2), directReply(true, ahead)}, []error{nil, nil, nil}, true, false},
		{"one owner", [][]byte{directReply(true, ahead)}, []error{nil}, true, false},
		{"one refused", [][]byte{directReply(true, 1), directReply(false, ahead), directReply(true, 3)}, []error{nil, nil, nil}, false, false},
		{"short answer", [][]byte{directReply(true, 1), msgpack.AppendArrayHeader(msgpack.AppendBool(nil, true), 1)}, []error{nil, nil}, false, false},
		{"garbage", [][]byte{directReply(true, 1), {0xc1}}, []error{nil, nil}, false, false},
		{"connection lost", [][]byte{nil, directReply(true, 1)}, []error{rpc.ErrConnLost, nil}, false, false},
		{"store error", [][]byte{nil}, []error{&rpc.Error{Msg: "store: no space left on device"}}, false, false},
		{"old server", [][]byte{directReply(true, 1), nil}, []error{nil, &rpc.Error{Code: rpc.CodeProtocol, Msg: "unknown method 76"}}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := directGateway()
			cas, err, calls := runDirect(g, tt.answers, tt.errs)
			if calls != 1 {
				t.Fatalf("done called %d times", calls)
			}
			if tt.ok && (err != nil || cas != 100) {
				t.Fatalf("got cas %d, %v; want 100, nil", cas, err)
			}
			if !tt.ok && !errors.Is(err, errDirectRefused) {
				t.Fatalf("got cas %d, %v; want errDirectRefused", cas, err)
			}
			if g.noDirect.off() != tt.noDirect {
				t.Fatalf("direct sets off = %v", g.noDirect.off())
			}
			if tt.ok && g.clk.Current() < ahead {
				t.Fatalf("clock %x did not follow an owner's %x", g.clk.Current(), ahead)
			}
		})
	}
}

// FuzzDirectFinish feeds arbitrary bytes as the answers of one to three
// owners: done must be called exactly once, with success only when every
// answer is a well-formed "stored".
func FuzzDirectFinish(f *testing.F) {
	f.Add(byte(1), directReply(true, 5))
	f.Add(byte(3), directReply(false, 5))
	f.Add(byte(2), []byte{0x92, 0xc3})
	f.Add(byte(1), []byte{0xc1})
	f.Fuzz(func(t *testing.T, n byte, res []byte) {
		owners := int(n)%3 + 1
		answers := make([][]byte, owners)
		errs := make([]error, owners)
		for i := range answers {
			answers[i] = res
		}
		g := directGateway()
		cas, err, calls := runDirect(g, answers, errs)
		if calls != 1 {
			t.Fatalf("done called %d times", calls)
		}
		nh, p, perr := msgpack.ReadArrayHeader(res)
		stored := false
		if perr == nil && nh >= 2 {
			stored, p, perr = msgpack.ReadBool(p)
			if perr == nil {
				_, _, perr = msgpack.ReadUint(p)
			}
		}
		if want := perr == nil && nh >= 2 && stored; want != (err == nil) || (err == nil && cas != 100) {
			t.Fatalf("answer %x: cas %d, %v", res, cas, err)
		}
	})
}

// Ensure that a plain set goes to every owner as a direct set only while
// the gateway knows of no rebalance, every owner is active and direct sets
// are on; otherwise it goes to the coordinator alone, carrying the
// gateway's clock (which is above the stamps of its direct sets).
func TestSetDirectRouting(t *testing.T) {
	type call struct {
		server int
		method uint32
		clock  uint64 // SetDirect: the stamp; Store: the value's clock field
	}
	calls := make(chan call, 16)
	g, addrs := fakeCluster(t, 3, func(i int, req *rpc.Request) {
		switch req.Method {
		case wire.SrvKeepAlive:
			req.Reply(msgpack.AppendNil)
		case wire.SrvSetDirect:
			_, p, _ := msgpack.ReadArrayHeader(req.Params)
			ct, _, _ := msgpack.ReadUint(p)
			calls <- call{i, req.Method, ct}
			req.Reply(func(b []byte) []byte { return append(b, directReply(true, 5)...) })
		case wire.SrvStore:
			_, p, _ := msgpack.ReadArrayHeader(req.Params)
			_, p, _ = msgpack.ReadUint(p)
			_, p, _ = msgpack.ReadRaw(p)
			raw, _, _ := msgpack.ReadRaw(p)
			v, _ := wire.ParseDBValue(raw)
			calls <- call{i, req.Method, v.Clock}
			req.Reply(func(b []byte) []byte {
				b = msgpack.AppendArrayHeader(b, 2)
				b = msgpack.AppendUint(b, wire.StatusOK)
				return msgpack.AppendUint(b, 9)
			})
		default:
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
		}
	})
	// The asynchronous paths use open connections only: open them.
	for _, a := range addrs {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res, err := g.server(a).Call(ctx, wire.SrvKeepAlive, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		res.Release()
	}
	set := func() (uint64, []call) {
		t.Helper()
		ch := make(chan uint64, 1)
		it := memcache.Item{Key: []byte("k"), Value: []byte("v")}
		if !g.SetAsync(&it, func(cas uint64, err error) {
			if err != nil {
				t.Errorf("set: %v", err)
			}
			ch <- cas
		}) {
			t.Fatal("SetAsync declined")
		}
		var cas uint64
		select {
		case cas = <-ch:
		case <-time.After(20 * time.Second):
			t.Fatal("no answer")
		}
		var got []call
		for len(calls) > 0 {
			got = append(got, <-calls)
		}
		return cas, got
	}
	hs := g.whs.Load()
	o := hs.Owners(ring.Hash([]byte("k")))
	co, _ := o.Coordinator()
	coord := -1
	for i, a := range addrs {
		if a == co.Addr {
			coord = i
		}
	}

	cas, got := set()
	if len(got) != 3 {
		t.Fatalf("steady: %d requests %v, want a SetDirect to each of 3 owners", len(got), got)
	}
	seen := map[int]bool{}
	for _, c := range got {
		if c.method != wire.SrvSetDirect || c.clock != cas || seen[c.server] {
			t.Fatalf("steady: %v (cas %x)", got, cas)
		}
		seen[c.server] = true
	}
	stamp := cas

	toCoordinator := func(name string) {
		t.Helper()
		_, got := set()
		if len(got) != 1 || got[0].method != wire.SrvStore || got[0].server != coord || got[0].clock < stamp {
			t.Fatalf("%s: %v, want one Store to server %d carrying a clock >= %x", name, got, coord, stamp)
		}
	}
	g.rhs.Store(ring.New(hs.Nodes(), hs.Clock()-1)) // a rebalance
	toCoordinator("rebalance")
	g.rhs.Store(hs)

	nodes := hs.Nodes()
	for i := range nodes {
		if nodes[i].Addr != co.Addr {
			nodes[i].Active = false // a fault owner
			break
		}
	}
	fault := ring.New(nodes, hs.Clock()+1)
	g.whs.Store(fault)
	g.rhs.Store(fault)
	toCoordinator("fault owner")
	g.whs.Store(hs)
	g.rhs.Store(hs)

	g.cfg.NoDirectSets = true
	toCoordinator("--no-direct-sets")
	g.cfg.NoDirectSets = false
	g.noDirect.stop()
	toCoordinator("a server that does not know direct sets")
}

// Ensure that a method turned off by a server that did not know it is off
// for fallbackFor, then tried again; that stop reports only the change
// from in use to off; and that off does not read the clock while in use.
func TestFallback(t *testing.T) {
	var f fallback
	if f.off() {
		t.Fatal("off from the start")
	}
	if !f.stop() {
		t.Fatal("first stop did not report the change")
	}
	if !f.off() {
		t.Fatal("not off after stop")
	}
	if f.stop() {
		t.Fatal("second stop reported a change")
	}
	if u := f.until.Load(); u < time.Now().Add(fallbackFor-time.Second).UnixNano() {
		t.Fatalf("off until %v, want about %v from now", time.Unix(0, u), fallbackFor)
	}
	f.until.Store(time.Now().Add(-time.Millisecond).UnixNano()) // fallbackFor has passed
	if f.off() {
		t.Fatal("still off after fallbackFor")
	}
	if f.until.Load() != 0 {
		t.Fatal("not back in use")
	}
	f.until.Store(time.Now().Add(-time.Millisecond).UnixNano())
	if !f.stop() {
		t.Fatal("stop after an expired fallback did not report the change")
	}
}
