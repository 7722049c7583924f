package manager

import (
	"io"
	"net"
	"testing"
	"time"

	"kumofs/ring"
)

// Ensure that a partner manager whose connection stays open but who no
// longer answers (a hung process, a stalled VM) stops leading the
// automatic replaces within the keepalive timeout, so that this manager
// runs them; and that a partner who answers keeps leading.
func TestHungPartnerLeadsNothing(t *testing.T) {
	self, _ := ring.ParseAddr("127.0.0.1:65535", 0) // above any partner below
	const timeout = 300 * time.Millisecond

	// A partner that accepts the connection and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	hung := newTestManager(t, Config{Self: self, Partner: ln.Addr().String(), KeepAliveTimeout: timeout})
	waitUntil(t, 5*time.Second, "the hung partner's connection", func() bool { return hung.partner.Conn() != nil })
	waitUntil(t, 5*time.Second, "the hung partner to lose the lead", func() bool { return !hung.partnerLeads() })
	if hung.partner.Conn() == nil {
		t.Fatal("the connection to the hung partner closed: the test proves nothing")
	}

	// A partner that answers keeps the lead.
	lowAddr, _ := ring.ParseAddr("127.0.0.1:1", 0)
	other := newTestManager(t, Config{Self: lowAddr, AutoReplace: true})
	m := newTestManager(t, Config{Self: self, Partner: other.Addr().String(), KeepAliveTimeout: timeout})
	waitUntil(t, 5*time.Second, "the partner to lead", m.partnerLeads)
	for end := time.Now().Add(4 * timeout); time.Now().Before(end); time.Sleep(timeout / 10) {
		if !m.partnerLeads() {
			t.Fatal("an answering partner lost the lead")
		}
	}
}

// Ensure that a partner with the smaller address leads the automatic
// replaces only while its own automatic replace is on: a pair started with
// -a on the other manager only replaced nothing at all, while both status
// pages said "auto replace on" for that one.
func TestPartnerWithoutAutoReplaceLeadsNothing(t *testing.T) {
	const timeout = 300 * time.Millisecond
	lowAddr, _ := ring.ParseAddr("127.0.0.1:1", 0)
	low := newTestManager(t, Config{Self: lowAddr})
	self, _ := ring.ParseAddr("127.0.0.1:65535", 0)
	m := newTestManager(t, Config{Self: self, Partner: low.Addr().String(), KeepAliveTimeout: timeout, AutoReplace: true})
	waitUntil(t, 5*time.Second, "the partner to answer pings", m.partnerUp)
	waitUntil(t, 5*time.Second, "the partner without -a to lose the lead", func() bool { return !m.partnerLeads() })
	for end := time.Now().Add(4 * timeout); time.Now().Before(end); time.Sleep(timeout / 10) {
		if m.partnerLeads() {
			t.Fatal("a partner with automatic replace off leads")
		}
	}
	low.mu.Lock()
	low.autoReplace = true // kumoctl enable-auto-replace at the partner
	low.mu.Unlock()
	waitUntil(t, 5*time.Second, "the partner to lead once its automatic replace is on", m.partnerLeads)
}

func TestPartnerAutoReplaceAnswer(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  []byte
		want bool
	}{
		{"on", []byte{0x92, 0xc3, 0xc3}, true},
		{"off", []byte{0x92, 0xc2, 0xc2}, false},
		{"adopted, off", []byte{0x92, 0xc3, 0xc2}, false},
		{"older manager: true", []byte{0xc3}, true},
		{"older manager: nil", []byte{0xc0}, true},
		{"short array", []byte{0x91, 0xc2}, true},
		{"not a bool", []byte{0x92, 0xc2, 0x01}, true},
		{"empty", nil, true},
	} {
		if got := partnerAutoReplace(tc.res); got != tc.want {
			t.Errorf("%s: partnerAutoReplace(% x) = %v, want %v", tc.name, tc.res, got, tc.want)
		}
	}
}

// waitUntil polls cond every 10 ms until it holds or the timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// Ensure that a hash space change whose sync the partner missed (here:
// made without one, as when the partner hung past the sync's timeout with
// its connection open) reaches the partner with the next ping, and that an
// older space pinged back does not replace it.
func TestPingSyncsPartner(t *testing.T) {
	const timeout = 300 * time.Millisecond
	lowAddr, _ := ring.ParseAddr("127.0.0.1:1", 0)
	b := newTestManager(t, Config{Self: lowAddr})
	self, _ := ring.ParseAddr("127.0.0.1:65535", 0)
	a := newTestManager(t, Config{Self: self, Partner: b.Addr().String(), KeepAliveTimeout: timeout})
	waitUntil(t, 5*time.Second, "the partner to answer pings", a.partnerUp)

	srv, _ := ring.ParseAddr("127.0.0.1:19800", 19800)
	ct := a.clk.Now()
	hs := ring.New([]ring.Node{{Addr: srv, Active: true}}, ct)
	a.mu.Lock()
	a.whs, a.rhs = hs, hs // no syncPartner: the sync was lost
	a.mu.Unlock()
	waitUntil(t, 5*time.Second, "the partner to take the change", func() bool {
		w, r := b.seeds()
		return w.Clock() == ct && r.Clock() == ct
	})
	if w, _ := b.seeds(); !w.IsActive(srv) {
		t.Fatalf("the partner's write space %v lacks %s", w.Nodes(), srv)
	}

	// The partner's older space does not go back: b pings nobody here, so
	// send it by hand, as b's ping would.
	other, _ := ring.ParseAddr("127.0.0.1:19801", 19800)
	old := ring.New([]ring.Node{{Addr: other, Active: true}}, ct-1)
	if a.adopt(old, old) {
		t.Fatal("an older hash space was adopted")
	}
	if w, _ := a.seeds(); w.Clock() != ct {
		t.Fatalf("write space clock %x, want %x", w.Clock(), ct)
	}
}

// Ensure that only the clock decides what a manager takes from its
// partner: a newer space whose servers are all fault (every server
// stopped) is taken, and an older one is not, though ours has no active
// server then.
func TestAdoptByClockOnly(t *testing.T) {
	m := newTestManager(t, Config{})
	a, _ := ring.ParseAddr("127.0.0.1:19831", 19800)
	active := []ring.Node{{Addr: a, Active: true}}
	fault := []ring.Node{{Addr: a, Active: false}}
	ct := m.clk.Now()
	if !m.adopt(ring.New(active, ct), ring.New(active, ct)) {
		t.Fatal("the first space was not taken")
	}
	if !m.adopt(ring.New(fault, ct+1), ring.New(fault, ct+1)) {
		t.Fatal("a newer space with every server fault was not taken")
	}
	if m.adopt(ring.New(active, ct), ring.New(active, ct)) {
		t.Fatal("an older space was taken because ours has no active server")
	}
	if w, r := m.seeds(); w.Clock() != ct+1 || r.Clock() != ct+1 || w.IsActive(a) {
		t.Fatalf("whs %v at %x, rhs at %x; want every server fault at %x", w.Nodes(), w.Clock(), r.Clock(), ct+1)
	}
}

// Ensure that the first replace after a manager built its write space from
// none is a full one: the servers' read spaces may predate a restart no
// manager saw (a server restarted with an empty store while both managers
// were down counted as holding its keys, and nothing was copied to it);
// later replaces copy only what moved.
func TestFirstReplaceIsFull(t *testing.T) {
	m := newTestManager(t, Config{})
	full := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.replace == nil {
			t.Fatal("no replace started")
		}
		return m.replace.full
	}
	for i, port := range []string{"19841", "19842"} {
		a, _ := ring.ParseAddr("127.0.0.1:"+port, 19800)
		keepAlive(t, dialAsServer(t, m, a))
		waitUntil(t, 5*time.Second, "the newcomer", func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.isNewcomer(a)
		})
		m.attach()
		m.startReplace(false)
		if got, want := full(), i == 0; got != want {
			t.Fatalf("replace %d: full %v, want %v", i+1, got, want)
		}
		m.mu.Lock()
		m.replace = nil // as if it finished
		m.mu.Unlock()
	}
}
