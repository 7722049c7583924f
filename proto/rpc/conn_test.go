package rpc

// Connection lifecycle: a peer that goes down and comes back, redials,
// silent peers, probes, backoff and closing.

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPeerDown checks that calls fail fast while the peer is unreachable,
// that OnDown counts failed attempts, and that the client reconnects once
// the peer is back.
func TestPeerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: connection refused

	var mu sync.Mutex
	var downs []int
	var ups atomic.Int32
	cl := dialTest(t, addr, Options{
		OnDown: func(failures int, err error) {
			mu.Lock()
			downs = append(downs, failures)
			mu.Unlock()
		},
		OnUp: func(c *Conn) { ups.Add(1) },
	})
	// The first call waits for the first attempt, which fails.
	if _, err := callInt(cl, mAdd, 1, 1); err != ErrPeerDown {
		t.Fatalf("call while down = %v, want ErrPeerDown", err)
	}
	waitFor(t, "three failed attempts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(downs) >= 3
	})
	mu.Lock()
	if downs[0] != 1 || downs[1] != 2 || downs[2] != 3 {
		t.Errorf("OnDown failures = %v, want 1, 2, 3, ...", downs)
	}
	mu.Unlock()
	// Fail fast: while backing off, a call returns at once.
	start := time.Now()
	for time.Since(start) < 50*time.Millisecond {
		if _, err := callInt(cl, mAdd, 1, 1); err != ErrPeerDown {
			t.Fatalf("call while down = %v", err)
		}
	}
	// Bring the peer up on the same port; the client reconnects.
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port reuse: %v", err)
	}
	srv := &Server{Handler: testHandler(t), Logf: t.Logf}
	go srv.Serve(l2)
	defer srv.Close()
	waitFor(t, "reconnect", func() bool { return ups.Load() == 1 })
	if v, err := callInt(cl, mAdd, 1, 1); v != 2 || err != nil {
		t.Fatalf("after reconnect: %d, %v", v, err)
	}
	// Dropping the connection reports failures == 0.
	mu.Lock()
	n := len(downs)
	mu.Unlock()
	srv.Close()
	waitFor(t, "OnDown(0)", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(downs) > n && downs[n] == 0
	})
}

// TestRedial checks that Redial ends a long backoff wait at once.
func TestRedial(t *testing.T) {
	t.Parallel()
	var dials atomic.Int32
	failed := make(chan int, 16)
	cl := dialTest(t, "127.0.0.1:1", Options{
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			dials.Add(1)
			return nil, errors.New("refused")
		},
		OnDown: func(failures int, err error) { failed <- failures },
	})
	// Seven failures put the client into its longest wait (maxBackoff).
	for n := 0; n < 7; {
		select {
		case n = <-failed:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d failed attempts", n)
		}
	}
	before := dials.Load()
	start := time.Now()
	cl.Redial()
	select {
	case n := <-failed:
		if n != 8 || dials.Load() != before+1 {
			t.Fatalf("after Redial: failures %d, dials %d (was %d)", n, dials.Load(), before)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no dial after Redial")
	}
	if d := time.Since(start); d >= maxBackoff {
		t.Fatalf("Redial's dial came after %v, not before the backoff of %v ended", d, maxBackoff)
	}
	// The backoff restarted from the minimum: the next attempt follows soon.
	start = time.Now()
	<-failed
	if d := time.Since(start); d >= maxBackoff {
		t.Fatalf("backoff after Redial = %v, want it restarted from %v", d, minBackoff)
	}
}

// TestCloseSilent checks that with CloseSilent a call that times out with
// nothing arriving closes the connection (and the client reconnects), while
// a call that times out as other replies arrive leaves it open.
func TestCloseSilent(t *testing.T) {
	ts := startServer(t, &Server{})
	downs := make(chan error, 4)
	cl := dialTest(t, ts.addr, Options{CallTimeout: 100 * time.Millisecond, CloseSilent: true,
		OnDown: func(failures int, err error) { downs <- err }})
	if v, err := callInt(cl, mAdd, 1, 1); v != 2 || err != nil {
		t.Fatalf("add = %d, %v", v, err)
	}
	first := cl.Conn()
	// Replies to other calls keep the connection open.
	errc := make(chan error, 1)
	cl.Go(mNever, nil, 200*time.Millisecond, func(_ []byte, err error) { errc <- err })
	for done := false; !done; {
		select {
		case err := <-errc:
			if err != ErrTimeout {
				t.Fatalf("never = %v, want ErrTimeout", err)
			}
			done = true
		default:
			if v, err := callInt(cl, mAdd, 2, 2); v != 4 || err != nil {
				t.Fatalf("add while waiting = %d, %v", v, err)
			}
		}
	}
	if c := cl.Conn(); c != first {
		t.Fatalf("connection replaced although the peer answered other calls")
	}
	// A call timing out on a silent peer closes the connection.
	if _, err := callInt(cl, mNever); err != ErrTimeout {
		t.Fatalf("never = %v, want ErrTimeout", err)
	}
	select {
	case err := <-downs:
		if err != errSilent {
			t.Fatalf("OnDown(0, %v), want errSilent", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection stayed open")
	}
	waitFor(t, "reconnect", func() bool { c := cl.Conn(); return c != nil && c != first })
	if v, err := callInt(cl, mAdd, 3, 3); v != 6 || err != nil {
		t.Fatalf("after reconnect = %d, %v", v, err)
	}
}

// TestProbe checks that a probe tells a slow live peer (kept) from a
// silent one (closed long before the call's own timeout).
func TestProbe(t *testing.T) {
	t.Parallel()
	probe := &Probe{Method: mAdd, Args: ints(1, 1), After: 100 * time.Millisecond}
	// A live peer answers the probe while the call waits: nothing closes.
	ts := startServer(t, &Server{})
	cl := dialTest(t, ts.addr, Options{CloseSilent: true, Probe: probe})
	if v, err := callInt(cl, mAdd, 1, 1); v != 2 || err != nil {
		t.Fatalf("add = %d, %v", v, err)
	}
	first := cl.Conn()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	_, err := cl.Call(ctx, mNever, nil)
	cancel()
	if err != ErrTimeout || cl.Conn() != first {
		t.Fatalf("slow peer: %v, conn kept %v", err, cl.Conn() == first)
	}
	// A peer that reads but never answers anything: the probe closes the
	// conn, and the call fails with ErrConnLost well before its deadline.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, nc)
		}
	}()
	cl2 := dialTest(t, l.Addr().String(), Options{CloseSilent: true, Probe: probe})
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := cl2.Call(ctx, mAdd, ints(2, 2)); err != ErrConnLost {
		t.Fatalf("silent peer: %v, want ErrConnLost", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("silent peer detected after %v", d)
	}
}

func TestNextBackoff(t *testing.T) {
	var got []time.Duration
	for d := minBackoff; len(got) < 8; d = nextBackoff(d) {
		got = append(got, d)
	}
	want := []time.Duration{50, 100, 200, 400, 800, 1600, 2000, 2000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff sequence %v", got)
		}
	}
}

func TestPendingCallsFailOnConnLoss(t *testing.T) {
	ts := startServer(t, &Server{})
	cl := dialTest(t, ts.addr, Options{})
	errc := make(chan error, 1)
	if _, err := callInt(cl, mAdd, 0, 0); err != nil {
		t.Fatal(err)
	}
	go func() { _, err := callInt(cl, mNever); errc <- err }()
	waitFor(t, "pending call", func() bool {
		c := cl.Conn()
		c.cmu.Lock()
		defer c.cmu.Unlock()
		return len(c.calls) == 1
	})
	ts.srv.Close()
	if err := <-errc; err != ErrConnLost {
		t.Fatalf("pending call = %v, want ErrConnLost", err)
	}
}

func TestClientClose(t *testing.T) {
	ts := startServer(t, &Server{})
	cl := Dial(ts.addr, Options{Logf: t.Logf})
	errc := make(chan error, 1)
	if _, err := callInt(cl, mAdd, 0, 0); err != nil {
		t.Fatal(err)
	}
	go func() { _, err := callInt(cl, mNever); errc <- err }()
	waitFor(t, "pending call", func() bool {
		c := cl.Conn()
		c.cmu.Lock()
		defer c.cmu.Unlock()
		return len(c.calls) == 1
	})
	cl.Close()
	if err := <-errc; err != ErrClosed {
		t.Fatalf("pending call = %v, want ErrClosed", err)
	}
	if _, err := callInt(cl, mAdd, 1, 1); err != ErrClosed {
		t.Fatalf("call after Close = %v", err)
	}
	done := make(chan error, 1)
	cl.Go(mAdd, nil, 0, func(_ []byte, err error) { done <- err })
	if err := <-done; err != ErrClosed {
		t.Fatalf("Go after Close = %v", err)
	}
	waitFor(t, "server conn closed", func() bool { return ts.srv.Conns() == 0 })
}
