package manager

import (
	"testing"
	"time"

	"kumofs/ring"
)

// Ensure that a manager that sees a server's restart late (it was paused
// while its partner marked the server fault and the new incarnation was
// attached) takes the partner's attach instead of marking the server fault
// again, which, newer than the attach, undid it in both managers; and that
// a restart the partner has not attached is marked fault as before.
func TestLateRestartKeepsPartnersAttach(t *testing.T) {
	// a ran during b's pause; b asks a (a has no partner: it never pushes
	// its spaces to b, as if b were still paused).
	aAddr, _ := ring.ParseAddr("127.0.0.1:1", 0)
	bAddr, _ := ring.ParseAddr("127.0.0.1:2", 0)
	a := newTestManager(t, Config{Self: aAddr})
	b := newTestManager(t, Config{Self: bAddr, Partner: a.Addr().String()})
	srv, _ := ring.ParseAddr("127.0.0.1:19830", 19800)
	view := func(m *Manager) (clock uint64, active bool, accepted uint64) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if s := m.servers[srv]; s != nil {
			accepted = s.accepted
		}
		return m.whs.Clock(), m.whs.IsActive(srv), accepted
	}

	ca, cb := dialAsServer(t, a, srv), dialAsServer(t, b, srv)
	keepAliveInc(t, ca, 1)
	keepAliveInc(t, cb, 1)
	a.attach()
	b.adopt(a.seeds())
	if _, active, _ := view(b); !active {
		t.Fatal("setup: the server is not active on b")
	}

	// The server restarts (incarnation 2) while b is paused: a marks it
	// fault and attaches it again.
	keepAliveInc(t, ca, 2)
	if _, active, _ := view(a); active {
		t.Fatal("a did not mark the restarted server fault")
	}
	a.attach()
	attached, active, acc := view(a)
	if !active || acc != 2 {
		t.Fatalf("a after the attach: active %v, accepted %d", active, acc)
	}

	// b wakes and sees incarnation 2.
	keepAliveInc(t, cb, 2)
	waitUntil(t, 5*time.Second, "b to take a's attach", func() bool {
		c, _, _ := view(b)
		return c == attached
	})
	if c, active, acc := view(b); c != attached || !active || acc != 2 {
		t.Fatalf("b: clock %x active %v accepted %d; want a's %x, active, 2", c, active, acc, attached)
	}
	if c, active, _ := view(a); c != attached || !active {
		t.Fatalf("a changed: clock %x active %v", c, active)
	}

	// A restart a has not attached (incarnation 3, seen by b first) is
	// marked fault.
	keepAliveInc(t, cb, 3)
	waitUntil(t, 5*time.Second, "b to mark the server fault", func() bool {
		_, active, _ := view(b)
		return !active
	})
}

// Ensure that a server lost and then back with a new incarnation is marked
// fault also when the hash space has it active again meanwhile (here: a
// partner's newer space, as when every server stopped and the two
// managers each marked only the losses they saw): the manager used to
// forget a lost server's incarnation and took the new process back
// without an attach, serving from a store that may have missed writes.
func TestLostServerRestartNeedsAttach(t *testing.T) {
	// A long keepalive timeout: the watchdog must not mark the server
	// lost for its silence after the one keepalive the test sends.
	m := newTestManager(t, Config{LostTimeout: 50 * time.Millisecond, KeepAliveTimeout: time.Minute})
	srv, _ := ring.ParseAddr("127.0.0.1:19831", 19800)
	active := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.whs.IsActive(srv)
	}
	cl := dialAsServer(t, m, srv)
	keepAliveInc(t, cl, 1)
	m.attach()
	if !active() {
		t.Fatal("setup: not attached")
	}
	cl.Close()
	waitUntil(t, 5*time.Second, "the server lost", func() bool { return !active() })
	hs := ring.New([]ring.Node{{Addr: srv, Active: true}}, m.clk.Now())
	if !m.adopt(hs, hs) || !active() {
		t.Fatal("setup: the partner's space with the server active not taken")
	}
	cl2 := dialAsServer(t, m, srv)
	keepAliveInc(t, cl2, 2)
	waitUntil(t, 5*time.Second, "the new incarnation marked fault", func() bool { return !active() })
	m.mu.Lock()
	newcomer := m.isNewcomer(srv)
	m.mu.Unlock()
	if !newcomer {
		t.Fatal("the new incarnation does not await attach")
	}
}
