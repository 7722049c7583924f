package gateway

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"kumofs/internal/logging"
	"kumofs/internal/metrics"
	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/memcache"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
)

func testGateway() *Gateway {
	g := &Gateway{log: logging.New(io.Discard, logging.Info).With("gateway"), clk: clock.New(clock.Options{})}
	g.registerMetrics(metrics.NewRegistry())
	return g
}

// Ensure that a SrvGetMulti reply is handed to each key's done exactly
// once, in order: values as items, nil and tombstones as misses, codes,
// malformed entries, a reply of the wrong length and RPC errors as errors
// (memcache reads those keys again); and that a protocol error (a server
// older than the method) turns multi-key reads off.
func TestMultiFinish(t *testing.T) {
	val := func(v wire.Value) []byte {
		b := msgpack.AppendRawHeader(nil, uint32(wire.DBValueLen(&v)))
		return wire.AppendDBValue(b, &v)
	}
	reply := func(entries ...[]byte) []byte {
		b := msgpack.AppendArrayHeader(nil, uint32(len(entries)))
		for _, e := range entries {
			b = append(b, e...)
		}
		return b
	}
	hit := val(wire.Value{Clock: 7, Flags: 3, Data: []byte("abc")})
	tomb := val(wire.Value{Clock: 8, Tombstone: true})
	expired := val(wire.Value{Clock: 9, Exptime: 1, Data: []byte("old")})
	code := msgpack.AppendUint(nil, wire.GetMultiElsewhere)
	null := msgpack.AppendNil(nil)
	tests := []struct {
		name    string
		res     []byte
		err     error
		want    []string // per key: the value, "miss" or "error"
		noMulti bool
	}{
		{"entries", reply(hit, null, tomb, expired, code, msgpack.AppendUint(nil, wire.GetMultiFailed)), nil,
			[]string{"abc/3/7", "miss", "miss", "miss", "error", "error"}, false},
		{"short reply", reply(hit), nil, []string{"error", "error"}, false},
		{"truncated entry", reply(hit, hit[:4]), nil, []string{"abc/3/7", "error"}, false},
		{"garbage", []byte{0xc1}, nil, []string{"error", "error"}, false},
		{"connection lost", nil, rpc.ErrConnLost, []string{"error", "error"}, false},
		{"old server", nil, &rpc.Error{Code: rpc.CodeProtocol, Msg: "unknown method 73"}, []string{"error", "error"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGateway()
			mc := g.newMulti()
			got := make([]string, len(tt.want))
			calls := make([]int, len(tt.want))
			for i := range tt.want {
				mc.done[i] = func(it *memcache.Item, err error) {
					calls[i]++
					switch {
					case err == nil:
						got[i] = fmt.Sprintf("%s/%d/%d", it.Value, it.Flags, it.CAS)
					case errors.Is(err, memcache.ErrNotFound):
						got[i] = "miss"
					default:
						got[i] = "error"
					}
				}
			}
			mc.n = len(tt.want)
			mc.finish(tt.res, tt.err)
			for i := range tt.want {
				if calls[i] != 1 || got[i] != tt.want[i] {
					t.Errorf("key %d: %d calls, %q; want 1, %q", i, calls[i], got[i], tt.want[i])
				}
			}
			if g.noMulti.off() != tt.noMulti {
				t.Errorf("multi-key reads off = %v, want %v", g.noMulti.off(), tt.noMulti)
			}
		})
	}
}

// FuzzMultiFinish feeds arbitrary bytes to the SrvGetMulti reply decoder as
// the reply for 1 to 16 keys: every key's done must be called exactly once,
// with an item only when it reports no error.
func FuzzMultiFinish(f *testing.F) {
	v := wire.Value{Clock: 7, Flags: 3, Data: []byte("abc")}
	hit := msgpack.AppendRawHeader(nil, uint32(wire.DBValueLen(&v)))
	hit = wire.AppendDBValue(hit, &v)
	two := msgpack.AppendArrayHeader(nil, 2)
	two = append(append(two, hit...), msgpack.AppendNil(nil)...)
	f.Add(byte(2), two)
	f.Add(byte(2), msgpack.AppendUint(msgpack.AppendUint(msgpack.AppendArrayHeader(nil, 2), 1), 2))
	f.Add(byte(3), two)
	f.Add(byte(1), []byte{0xc1})
	f.Fuzz(func(t *testing.T, nk byte, res []byte) {
		n := int(nk)%maxMulti + 1
		g := testGateway()
		mc := g.newMulti()
		calls := make([]int, n)
		for i := 0; i < n; i++ {
			mc.done[i] = func(it *memcache.Item, err error) {
				calls[i]++
				if err == nil && it == nil {
					t.Errorf("key %d: no error and no item", i)
				}
			}
		}
		mc.n = n
		mc.finish(res, nil)
		for i, c := range calls {
			if c != 1 {
				t.Fatalf("key %d: done called %d times", i, c)
			}
		}
	})
}
