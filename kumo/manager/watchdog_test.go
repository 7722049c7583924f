package manager

import (
	"testing"
	"time"

	"kumofs/proto/rpc"
	"kumofs/ring"
)

// TestCheckSilent: a server silent past the keepalive timeout is taken,
// unless the watchdog itself did not run for a while: then nobody is
// blamed, and everyone gets a fresh timeout from that moment.
func TestCheckSilent(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	a, _ := ring.ParseAddr("127.0.0.1:1", 0)
	b, _ := ring.ParseAddr("127.0.0.1:2", 0)
	ca, cb := new(rpc.Conn), new(rpc.Conn)
	newM := func() *Manager {
		return &Manager{cfg: Config{KeepAliveTimeout: 3 * time.Second}, servers: map[ring.Addr]*srvState{
			a: {conn: ca, lastSeen: t0.Add(-10 * time.Second)},
			b: {conn: cb, lastSeen: t0.Add(-time.Second)},
		}}
	}
	tick := 250 * time.Millisecond

	m := newM()
	silent, conns, stalled := m.checkSilent(t0, t0.Add(-tick))
	if stalled || len(silent) != 1 || silent[0] != a || conns[0] != ca || m.servers[a].conn != nil || m.servers[b].conn != cb {
		t.Fatalf("on time: silent %v conns %v stalled %v", silent, conns, stalled)
	}

	m = newM()
	silent, _, stalled = m.checkSilent(t0, t0.Add(-5*time.Second)) // the manager was away 5 s
	if !stalled || len(silent) != 0 || !m.servers[a].lastSeen.Equal(t0) || !m.servers[b].lastSeen.Equal(t0) {
		t.Fatalf("after a stall: silent %v stalled %v, lastSeen %v %v", silent, stalled, m.servers[a].lastSeen, m.servers[b].lastSeen)
	}
	if silent, _, _ = m.checkSilent(t0.Add(3*time.Second), t0.Add(3*time.Second-tick)); len(silent) != 0 {
		t.Fatalf("within the fresh timeout: %v", silent)
	}
	silent, _, stalled = m.checkSilent(t0.Add(3*time.Second+tick), t0.Add(3*time.Second))
	if stalled || len(silent) != 2 {
		t.Fatalf("a fresh timeout later, both still silent: %v (stalled %v)", silent, stalled)
	}
}
