package manager

import (
	"context"
	"io"
	"testing"
	"time"

	"kumofs/internal/logging"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// newTestManager starts a manager on a free port, closed when the test ends.
func newTestManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.Log = logging.New(io.Discard, logging.Info).With("manager")
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// dialAsServer connects to m saying hello as the server at addr; the
// client is closed when the test ends (or earlier by the test).
func dialAsServer(t *testing.T, m *Manager, addr ring.Addr) *rpc.Client {
	cl := rpc.Dial(m.Addr().String(), rpc.Options{
		CallTimeout: 5 * time.Second,
		Hello:       &rpc.Hello{Addr: addr.Dump(), Role: wire.RoleServer},
	})
	t.Cleanup(func() { cl.Close() })
	return cl
}

// keepAlive sends a server's keepalive (incarnation 1) on cl.
func keepAlive(t *testing.T, cl *rpc.Client) {
	t.Helper()
	keepAliveInc(t, cl, 1)
}

// keepAliveInc sends a server's keepalive with incarnation inc on cl.
func keepAliveInc(t *testing.T, cl *rpc.Client, inc uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := cl.Call(ctx, wire.MgrKeepAlive, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 2)
		b = msgpack.AppendUint(b, 0)
		return msgpack.AppendUint(b, inc)
	})
	if err != nil {
		t.Fatal(err)
	}
	res.Release()
}
