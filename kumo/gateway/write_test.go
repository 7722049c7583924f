package gateway

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/memcache"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
)

// Ensure that a write that must not apply twice (incr, append) is not
// retried once an attempt may have taken effect (the coordinator took it
// and the connection died before the answer), and fails with
// ErrMaybeApplied; while a set, which may apply twice, is retried and
// succeeds.
func TestNoRetryAfterMaybeApplied(t *testing.T) {
	var calls [3]atomic.Int32 // by method: arith, append, set
	g, _ := fakeCluster(t, 1, func(_ int, req *rpc.Request) {
		var n int32
		switch {
		case req.Method == wire.SrvArith:
			n = calls[0].Add(1)
		case req.Method == wire.SrvStore && isAppend(req.Params):
			n = calls[1].Add(1)
		case req.Method == wire.SrvStore:
			n = calls[2].Add(1)
		default:
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
			return
		}
		if n == 1 {
			req.Conn.Close() // applied, and the answer lost
			return
		}
		req.Reply(func(b []byte) []byte {
			if req.Method == wire.SrvArith {
				b = msgpack.AppendArrayHeader(b, 5)
				b = msgpack.AppendUint(b, wire.StatusOK)
				b = msgpack.AppendUint(b, 7)
				b = msgpack.AppendUint(b, 9)
				b = msgpack.AppendBool(b, false)
				return msgpack.AppendUint(b, 0)
			}
			b = msgpack.AppendArrayHeader(b, 2)
			b = msgpack.AppendUint(b, wire.StatusOK)
			return msgpack.AppendUint(b, 9)
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := g.Incr(ctx, []byte("n"), 1, false, nil); !errors.Is(err, ErrMaybeApplied) {
		t.Errorf("incr whose answer was lost: %v, want ErrMaybeApplied", err)
	}
	it := memcache.Item{Key: []byte("a"), Value: []byte("x")}
	if _, err := g.Store(ctx, memcache.ModeAppend, &it); !errors.Is(err, ErrMaybeApplied) {
		t.Errorf("append whose answer was lost: %v, want ErrMaybeApplied", err)
	}
	if cas, err := g.Store(ctx, memcache.ModeSet, &it); err != nil || cas != 9 {
		t.Errorf("set whose first answer was lost: cas %d, %v; want it retried", cas, err)
	}
	for i, want := range []int32{1, 1, 2} {
		if got := calls[i].Load(); got != want {
			t.Errorf("method %d reached the server %d times, want %d", i, got, want)
		}
	}
}

// isAppend reports whether SrvStore params [mode, ...] ask for an append.
func isAppend(params []byte) bool {
	_, p, err := msgpack.ReadArrayHeader(params)
	if err != nil {
		return false
	}
	mode, _, err := msgpack.ReadUint(p)
	return err == nil && mode == wire.OpAppend
}
