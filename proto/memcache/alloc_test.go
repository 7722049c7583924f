package memcache_test

import (
	"context"
	"testing"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// TestSteadyStateAllocs checks that serving get and set of 1 KiB values,
// text and binary, allocates nothing per request: 1000 extra requests on a
// connection must not add a single allocation.
func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, tc := range []struct{ name, req string }{
		{"text get", "get key:000001\r\n"},
		{"text gets", "gets key:000001\r\n"},
		{"text set", "set key:000001 0 0 1024\r\n" + string(value1K) + "\r\n"},
		{"meta get", "mg key:000001 v f c t k s\r\n"},
		{"meta set", "ms key:000001 1024 T0 F1 c\r\n" + string(value1K) + "\r\n"},
		{"binary get", binReq(0x00, "key:000001", "", "", 1, 0)},
		{"binary getk", binReq(0x0c, "key:000001", "", "", 1, 0)},
		{"binary set", binReq(0x01, "key:000001", setExtras(0, 0), string(value1K), 1, 0)},
		{"binary setq", binReq(0x11, "key:000001", setExtras(0, 0), string(value1K), 1, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := memtest.New(nil)
			it := memcache.Item{Key: []byte("key:000001"), Value: value1K}
			be.Store(context.Background(), memcache.ModeSet, &it)
			s := &memcache.Server{Backend: be}
			serve := func(n int) func() {
				return func() { s.ServeConn(&loopConn{req: []byte(tc.req), left: n}) }
			}
			serve(100)()
			few := testing.AllocsPerRun(20, serve(1))
			many := testing.AllocsPerRun(20, serve(1001))
			if many > few {
				t.Errorf("1000 more requests cost %.1f more allocations (%.1f vs %.1f)", many-few, many, few)
			}
		})
	}
}
