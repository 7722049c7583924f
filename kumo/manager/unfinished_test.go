package manager

import (
	"sync/atomic"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// Ensure that a replace left unfinished by a manager that died (a write
// space the read space never caught up with, every server having started
// its copy) is started again by the leading manager, and that a write
// space attached without a replace (no copy started) is left alone.
func TestUnfinishedReplaceRestarted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		started bool // the servers started the copy of the write space
	}{{"copy started", true}, {"attach-noreplace", false}} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestManager(t, Config{})
			addr, _ := ring.ParseAddr("127.0.0.1:19851", 19800)
			var copied, starts atomic.Uint64
			cl := rpc.Dial(m.Addr().String(), rpc.Options{
				CallTimeout: 5 * time.Second,
				Hello:       &rpc.Hello{Addr: addr.Dump(), Role: wire.RoleServer},
				Handler: rpc.HandlerFunc(func(req *rpc.Request) {
					switch req.Method {
					case wire.SrvGetStatus:
						_, p, _ := msgpack.ReadArrayHeader(req.Params)
						code, _, _ := msgpack.ReadUint(p)
						v := uint64(wire.ReplWait)
						if code == wire.StatCopyTime {
							v = copied.Load()
						}
						req.Reply(func(b []byte) []byte { return msgpack.AppendUint(b, v) })
					case wire.SrvReplaceCopyStart:
						starts.Add(1)
						req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
					default:
						req.Reply(msgpack.AppendNil)
					}
				}),
			})
			t.Cleanup(func() { cl.Close() })
			keepAlive(t, cl)
			old := ring.New([]ring.Node{{Addr: addr, Active: false}}, m.clk.Now())
			w := ring.New([]ring.Node{{Addr: addr, Active: true}}, m.clk.Now())
			if tc.started {
				copied.Store(w.Clock())
			}
			m.mu.Lock()
			m.whs, m.rhs = w, old
			m.newcomers = nil
			m.pendingSince = time.Now().Add(-unfinishedAfter) // as if for long
			m.mu.Unlock()
			if tc.started {
				waitUntil(t, 5*time.Second, "the replace started again", func() bool { return starts.Load() > 0 })
				return
			}
			for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				if starts.Load() > 0 {
					t.Fatal("a replace was started for a write space attached without one")
				}
			}
		})
	}
}
