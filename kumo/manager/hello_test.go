package manager

import (
	"testing"
	"time"

	"kumofs/ring"
)

// Ensure that a second connection saying hello with a live server's address
// (a stranger, or a reconnect whose old connection lingers) does not get
// the server marked lost when it closes: the server's own connection, which
// goes on sending keepalives, takes its place. Before, the manager tracked
// only the latest connection per address, and a 10-byte hello sent and
// closed took a healthy server out of the cluster.
func TestSecondHelloDoesNotLoseServer(t *testing.T) {
	m := newTestManager(t, Config{LostTimeout: 50 * time.Millisecond})
	addr, _ := ring.ParseAddr("127.0.0.1:19812", 19800)
	state := func() (conns int, lost bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		s := m.servers[addr]
		if s == nil {
			return 0, true
		}
		if s.conn != nil {
			conns = 1
		}
		return conns + len(s.others), s.lost != nil
	}
	waitState := func(what string, want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, lost := state()
			if n == want && !lost {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d connections, lost %v; want %d, not lost", what, n, lost, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	real := dialAsServer(t, m, addr)
	keepAlive(t, real)
	waitState("the server", 1)

	stranger := dialAsServer(t, m, addr)
	keepAlive(t, stranger) // its hello came first; now it is the watched connection
	stranger.Close()
	waitState("the stranger gone", 1)
	keepAlive(t, real)
	m.mu.Lock()
	watched := m.servers[addr] != nil && m.servers[addr].conn != nil && !connClosed(m.servers[addr].conn)
	m.mu.Unlock()
	if !watched {
		t.Fatal("the server's own connection is not watched")
	}
}
