package manager

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"kumofs/internal/logging"
	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// refusals records clock.Options.Refused reports.
type refusals struct {
	mu    sync.Mutex // protects peers
	peers []string
}

func (r *refusals) add(peer string, _ uint64, err error, _ uint64) {
	if !errors.Is(err, clock.ErrTooFarAhead) {
		panic(err)
	}
	r.mu.Lock()
	r.peers = append(r.peers, peer)
	r.mu.Unlock()
}

func (r *refusals) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.peers...)
}

// Ensure that a peer clock far in the future (a fuzzed or broken peer's
// keepalive, hash space sync or replace report) does not move the manager's
// clock, that it is reported once naming the peer, and that a peer a few
// minutes ahead is still merged.
func TestFarFutureClockRefused(t *testing.T) {
	rep := &refusals{}
	clk := clock.New(clock.Options{MaxAhead: clock.DefaultMaxAhead, Refused: rep.add})
	self, _ := ring.ParseAddr("127.0.0.1:19700", 19700)
	m, err := New(Config{
		Self:   self,
		Listen: "127.0.0.1:0",
		Clock:  clk,
		Log:    logging.New(io.Discard, logging.Info).With("manager"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	peer, _ := ring.ParseAddr("127.0.0.1:19811", 19800)
	cl := rpc.Dial(m.Addr().String(), rpc.Options{
		CallTimeout: 5 * time.Second,
		Hello:       &rpc.Hello{Addr: peer.Dump(), Role: 1},
	})
	defer cl.Close()
	call := func(method uint32, args func([]byte) []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := cl.Call(ctx, method, args)
		if err != nil {
			var re *rpc.Error
			if !errors.As(err, &re) {
				t.Fatalf("method %d: %v", method, err)
			}
			return // a refusal of the parameters is fine; the clock is what counts
		}
		res.Release()
	}
	y2101 := clock.Make(4_133_980_800, 1)
	start := clock.Seconds(clk.Current())
	call(wire.MgrKeepAlive, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendUint(b, y2101)
	})
	call(wire.MgrReplaceCopyEnd, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 2)
		b = msgpack.AppendUint(b, 12345)
		return msgpack.AppendUint(b, y2101)
	})
	hs := ring.New(nil, clock.Make(start, 0))
	call(wire.MgrHashSpaceSync, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = hs.AppendSeed(b)
		b = hs.AppendSeed(b)
		return msgpack.AppendUint(b, y2101)
	})
	if s := clock.Seconds(clk.Current()); s > start+1 {
		t.Fatalf("clock moved to %v", clock.Time(clk.Current()))
	}
	if got := rep.get(); len(got) != 1 || got[0] != peer.String() {
		t.Fatalf("reports %q, want one for %s", got, peer)
	}
	if clk.Refused() != 3 {
		t.Fatalf("Refused() = %d, want 3", clk.Refused())
	}
	// Two minutes ahead: a skewed but sane peer.
	ahead := clock.Make(uint32(time.Now().Add(2*time.Minute).Unix()), 0)
	call(wire.MgrKeepAlive, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendUint(b, ahead)
	})
	if clk.Current() < ahead {
		t.Fatalf("a clock 2 minutes ahead was not merged: %v", clock.Time(clk.Current()))
	}
}
