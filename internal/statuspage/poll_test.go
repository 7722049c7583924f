package statuspage

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
)

// fakeServer answers GetStatus like a kumo-server, from a table.
type fakeServer struct {
	mu     sync.Mutex // protects status
	status map[uint64][]byte
	hang   bool
}

func (f *fakeServer) set(code uint64, v []byte) {
	f.mu.Lock()
	f.status[code] = v
	f.mu.Unlock()
}

func (f *fakeServer) serve(req *rpc.Request) {
	if f.hang {
		return // never answers
	}
	if req.Method == wire.SrvGetStatus {
		if n, p, err := msgpack.ReadArrayHeader(req.Params); err == nil && n == 1 {
			if code, _, err := msgpack.ReadUint(p); err == nil {
				f.mu.Lock()
				v, ok := f.status[code]
				f.mu.Unlock()
				if ok {
					req.ReplyRaw(v)
				} else {
					req.Reply(nil)
				}
				return
			}
		}
	}
	req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol})
}

func (f *fakeServer) start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &rpc.Server{Handler: rpc.HandlerFunc(f.serve), Logf: func(string, ...any) {}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func u(v uint64) []byte { return msgpack.AppendUint(nil, v) }

func TestPoller(t *testing.T) {
	good := &fakeServer{status: map[uint64][]byte{
		wire.StatCmdGet: u(100), wire.StatCmdSet: u(10), wire.StatCmdDelete: u(1),
		wire.StatDBItems: u(42), wire.StatReplace: u(wire.ReplCopying),
	}}
	goodAddr := good.start(t)
	hung := &fakeServer{hang: true}
	hungAddr := hung.start(t)
	bad := &fakeServer{status: map[uint64][]byte{wire.StatCmdGet: msgpack.AppendBool(nil, true)}}
	badAddr := bad.start(t)

	p := NewPoller(300 * time.Millisecond)
	defer p.Close()
	t0 := time.Unix(1000, 0)
	servers := func() []Server {
		return []Server{
			{Addr: goodAddr, State: StateActive},
			{Addr: hungAddr, State: StateActive},
			{Addr: badAddr, State: StateActive},
			{Addr: "127.0.0.1:1", State: StateFault},
		}
	}
	s := servers()
	p.Fill(context.Background(), s, t0)
	want := Server{Addr: goodAddr, State: StateActive, Items: 42, GetRate: -1, SetRate: -1, DelRate: -1, Replace: "Copying"}
	if s[0] != want {
		t.Errorf("first poll: %+v, want %+v", s[0], want)
	}
	for _, x := range s[1:] {
		if x.Items != -1 || x.GetRate != -1 || x.Replace != "" {
			t.Errorf("unreachable, bad or fault server: %+v", x)
		}
	}

	good.set(wire.StatCmdGet, u(300))
	good.set(wire.StatCmdSet, u(30))
	good.set(wire.StatReplace, u(0))
	s = servers()
	p.Fill(context.Background(), s, t0.Add(2*time.Second))
	want = Server{Addr: goodAddr, State: StateActive, Items: 42, GetRate: 100, SetRate: 10, DelRate: 0, Replace: "ready"}
	if s[0] != want {
		t.Errorf("second poll: %+v, want %+v", s[0], want)
	}

	// A server no longer listed loses its client.
	p.Fill(context.Background(), []Server{{Addr: goodAddr, State: StateActive}}, t0.Add(3*time.Second))
	p.mu.Lock()
	n := len(p.clients)
	p.mu.Unlock()
	if n != 1 {
		t.Errorf("%d clients kept, want 1", n)
	}
}

func TestReplState(t *testing.T) {
	for _, tc := range []struct {
		v     uint64
		isNil bool
		want  string
	}{
		{0, true, "nil"}, {0, false, "ready"}, {wire.ReplInactive | wire.ReplCopying, false, "inactive"},
		{wire.ReplDeleting | wire.ReplCopying, false, "Deleting"}, {wire.ReplCopying, false, "Copying"},
		{wire.ReplWait, false, "WAIT"},
	} {
		if got := replState(tc.v, tc.isNil); got != tc.want {
			t.Errorf("replState(%#x, %v) = %q, want %q", tc.v, tc.isNil, got, tc.want)
		}
	}
}
