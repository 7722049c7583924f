package manager

import (
	"slices"
	"testing"

	"kumofs/ring"
)

// Ensure that a server the partner marked fault after this manager had
// attached it can be attached here again. Each manager of a pair sees a
// restarted server's new incarnation on its own connection; when the
// partner saw it only after this manager's attach, it marked the server
// fault with a newer clock, this manager adopted that, and, the server no
// longer being a newcomer here, an attach here left it fault (seen with
// every server killed and restarted at once: one stayed fault until the
// operator attached through the other manager).
func TestAdoptedFaultAwaitsAttach(t *testing.T) {
	m := newTestManager(t, Config{})
	// Two servers: a write space whose only server is fault is empty, and
	// an empty space is never adopted.
	addr, _ := ring.ParseAddr("127.0.0.1:19813", 19800)
	other, _ := ring.ParseAddr("127.0.0.1:19814", 19800)
	for _, a := range []ring.Addr{addr, other} {
		keepAlive(t, dialAsServer(t, m, a))
	}
	newcomers := func() []ring.Addr {
		m.mu.Lock()
		defer m.mu.Unlock()
		return slices.Clone(m.newcomers)
	}
	active := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.whs.IsActive(addr)
	}
	if nc := newcomers(); len(nc) != 2 {
		t.Fatalf("newcomers after hello: %v", nc)
	}
	m.attach()
	if !active() || len(newcomers()) != 0 {
		t.Fatalf("after attach: active %v, newcomers %v", active(), newcomers())
	}

	// The partner marks it fault with a newer clock; we adopt that.
	m.mu.Lock()
	w, ok := m.whs.WithFault(addr, m.whs.Clock()+(1<<32))
	r := m.rhs
	m.mu.Unlock()
	if !ok {
		t.Fatal("WithFault changed nothing")
	}
	if !m.adopt(w, r) {
		t.Fatal("the newer write space was not adopted")
	}
	if active() {
		t.Fatal("active after adopting the fault")
	}
	if nc := newcomers(); !slices.Equal(nc, []ring.Addr{addr}) {
		t.Fatalf("newcomers after adopting the fault: %v; want the connected server", nc)
	}
	m.attach()
	if !active() {
		t.Fatal("an attach here did not bring it back")
	}
}
