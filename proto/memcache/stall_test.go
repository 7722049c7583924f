package memcache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// stallValue is large enough that a client that does not read stalls the
// server's write of even one reply (more than a socket buffer holds).
const stallValue = 8 << 20

// startStallServer starts a server holding "big" (stallValue bytes) with
// the given stalled-bytes limit, over a blocking backend ("blocking"), an
// asynchronous one on connection goroutines ("async") or the event loop
// ("loop").
func startStallServer(t *testing.T, kind string, limit int64) (*memcache.Server, string) {
	t.Helper()
	mt := memtest.New(time.Now)
	var be memcache.Backend = mt
	switch kind {
	case "async":
		be = &asyncBackend{Backend: mt, mode: asyncGo}
	case "loop":
		be = &batchBackend{asyncBackend: &asyncBackend{Backend: mt, mode: asyncGo}}
	}
	s := &memcache.Server{Backend: be, MaxItemSize: 2 * stallValue, MaxStalledBytes: limit, Logf: t.Logf,
		NoEventLoop: kind != "loop"}
	memcache.SetStallAge(s, 100*time.Millisecond)
	addr := memtest.StartServer(t, s)
	it := memcache.Item{Key: []byte("big"), Value: bytes.Repeat([]byte("v"), stallValue)}
	if _, err := be.Store(context.Background(), memcache.ModeSet, &it); err != nil {
		t.Fatal(err)
	}
	return s, addr
}

// dialSmall connects with a small receive buffer, so that the server's
// writes block soon.
func dialSmall(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return nil
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// drain reads c until it ends and returns how many bytes came.
func drain(t *testing.T, c net.Conn) (int64, error) {
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %d bytes", n)
	}
	return n, err
}

// TestStalledClientsCut: clients that send gets of a large value and do
// not read the replies are closed once the replies waiting for them pass
// MaxStalledBytes, on every write path (the connection goroutine's, the
// event loop's, the asynchronous completion's).
func TestStalledClientsCut(t *testing.T) {
	for _, tc := range []struct {
		kind string
		req  string
	}{
		{"blocking", strings.Repeat("get big\r\n", 4)},
		{"blocking", "get big big big\r\n"},
		{"async", "get big\r\n"},
		{"async", "get big big\r\n"},
		{"loop", "get big\r\n"},
		{"loop", "gets big\r\n"},
		{"loop", strings.Repeat("get big\r\n", 4)},
	} {
		t.Run(tc.kind+" "+strings.TrimSpace(tc.req[:min(len(tc.req), 20)]), func(t *testing.T) {
			s, addr := startStallServer(t, tc.kind, 1<<20)
			const n = 4
			var cs []net.Conn
			for range n {
				c := dialSmall(t, addr)
				if _, err := io.WriteString(c, tc.req); err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			deadline := time.Now().Add(20 * time.Second)
			for s.StalledCuts() < n && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := s.StalledCuts(); got != n {
				t.Fatalf("StalledCuts = %d, want %d", got, n)
			}
			full := int64(strings.Count(tc.req, "big")) * stallValue
			for i, c := range cs {
				if got, _ := drain(t, c); got >= full {
					t.Errorf("conn %d: read %d bytes, the whole reply (%d): not cut", i, got, full)
				}
			}
			// The server still serves a client that reads.
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "set k 0 0 1\r\nx\r\nget k\r\n")
			want := "STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n"
			buf := make([]byte, len(want))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != want {
				t.Fatalf("after the cuts: %q, %v", buf, err)
			}
		})
	}
}

// TestStalledClientsKeptUnderLimit: below MaxStalledBytes a client that
// stops reading keeps its connection as long as it likes (as memcached
// does), and gets its replies whole when it reads again.
func TestStalledClientsKeptUnderLimit(t *testing.T) {
	for _, kind := range []string{"blocking", "async", "loop"} {
		t.Run(kind, func(t *testing.T) {
			s, addr := startStallServer(t, kind, 1<<30)
			c := dialSmall(t, addr)
			io.WriteString(c, "get big\r\nget big\r\nquit\r\n")
			// Stalled for many times the stall age: nothing is cut.
			wait := time.Now().Add(time.Second)
			for time.Now().Before(wait) && s.StalledCuts() == 0 {
				time.Sleep(50 * time.Millisecond)
			}
			if got := s.StalledCuts(); got != 0 {
				t.Fatalf("StalledCuts = %d under the limit", got)
			}
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			all, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			one := "VALUE big 0 " + fmt.Sprint(stallValue) + "\r\n" + strings.Repeat("v", stallValue) + "\r\nEND\r\n"
			if string(all) != one+one {
				t.Fatalf("read %d bytes, want the two replies (%d)", len(all), 2*len(one))
			}
		})
	}
}

// statValue returns the named stat of the server at addr.
func statValue(t *testing.T, addr, name string) int64 {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "stats\r\nquit\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(all), "\r\n") {
		var v int64
		if _, err := fmt.Sscanf(line, "STAT "+name+" %d", &v); err == nil {
			return v
		}
	}
	t.Fatalf("no %s in %q", name, all)
	return 0
}

// TestGoneClientNotServed: a client that pipelines many gets and leaves
// (a reset) gets no more of its requests served: the first failed write
// ends the connection, also when the failed write was a large value that
// bypassed the write buffer (whose sticky error no later flush saw).
func TestGoneClientNotServed(t *testing.T) {
	for _, tc := range []struct{ kind, req string }{
		{"blocking", "get big\r\n"},
		{"blocking", "get big big big big\r\n"},
		{"loop", "get big\r\n"},
		{"loop", "get big big big big\r\n"},
		{"async", "get big big\r\n"},
	} {
		t.Run(tc.kind+" "+strings.TrimSpace(tc.req), func(t *testing.T) {
			_, addr := startStallServer(t, tc.kind, 1<<40)
			c := dialSmall(t, addr)
			const lines = 3000
			if _, err := io.WriteString(c, strings.Repeat(tc.req, lines)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
			c.(*net.TCPConn).SetLinger(0) // close with a reset
			c.Close()
			// 1: the stats connection asking (the one before it may
			// still be closing, so a 2 is asked again).
			deadline := time.Now().Add(30 * time.Second)
			n := statValue(t, addr, "curr_connections")
			for n != 1 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				n = statValue(t, addr, "curr_connections")
			}
			if n != 1 {
				t.Fatalf("curr_connections = %d 30 s after the client left, want 1 (the stats one)", n)
			}
			sent := int64(lines * strings.Count(tc.req, "big"))
			if got := statValue(t, addr, "cmd_get"); got > sent/10 {
				t.Errorf("cmd_get = %d of the %d gets sent by a client that left", got, sent)
			}
		})
	}
}

// TestPartialBodiesCut: clients that start large values and never finish
// them hold the buffers those need; over MaxStalledBytes they are closed
// like clients that do not read, text and binary; under it a client may
// take its time and its set is stored.
func TestPartialBodiesCut(t *testing.T) {
	const vlen = 2 << 20
	binSet := func(key string) []byte {
		// 0x80 SET, keylen, extlen 8, bodylen 8+len(key)+vlen
		h := []byte{0x80, 0x01, 0, byte(len(key)), 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		body := uint32(8 + len(key) + vlen)
		h[8], h[9], h[10], h[11] = byte(body>>24), byte(body>>16), byte(body>>8), byte(body)
		return append(append(h, make([]byte, 8)...), key...)
	}
	for _, kind := range []string{"blocking", "loop"} {
		t.Run(kind, func(t *testing.T) {
			s, addr := startStallServer(t, kind, 1<<20)
			var cs []net.Conn
			for i := range 4 {
				c := dialSmall(t, addr)
				head := []byte(fmt.Sprintf("set p%d 0 0 %d\r\n", i, vlen))
				if i%2 == 1 {
					head = binSet(fmt.Sprintf("p%d", i))
				}
				c.Write(append(head, bytes.Repeat([]byte("v"), vlen/2)...))
				cs = append(cs, c)
			}
			deadline := time.Now().Add(20 * time.Second)
			for s.StalledCuts() < 4 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := s.StalledCuts(); got != 4 {
				t.Fatalf("StalledCuts = %d, want 4", got)
			}
			for _, c := range cs {
				drain(t, c) // fails the test if the server keeps it open
			}
		})
	}
	t.Run("under the limit", func(t *testing.T) {
		s, addr := startStallServer(t, "blocking", 1<<30)
		c := dialSmall(t, addr)
		fmt.Fprintf(c, "set slow 0 0 %d\r\n", vlen)
		c.Write(bytes.Repeat([]byte("v"), vlen/2))
		wait := time.Now().Add(time.Second)
		for time.Now().Before(wait) && s.StalledCuts() == 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if got := s.StalledCuts(); got != 0 {
			t.Fatalf("StalledCuts = %d under the limit", got)
		}
		c.Write(append(bytes.Repeat([]byte("v"), vlen/2), "\r\n"...))
		buf := make([]byte, len("STORED\r\n"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "STORED\r\n" {
			t.Fatalf("the slow set: %q, %v", buf, err)
		}
	})
}

// Ensure that the end of a burst of large values (the bodies held at once
// passed the burst size, then all were let go) returns memory to the
// system once, on every serving path, and that values under the burst
// size do not.
func TestBurstEndReturnsMemory(t *testing.T) {
	const vlen = 1 << 20
	for _, kind := range []string{"blocking", "loop"} {
		t.Run(kind, func(t *testing.T) {
			s, addr := startStallServer(t, kind, 1<<30)
			memcache.SetBurstBodies(s, vlen+vlen/2)
			set := func(c net.Conn, key string) {
				t.Helper()
				fmt.Fprintf(c, "set %s 0 0 %d\r\n%s\r\n", key, vlen, bytes.Repeat([]byte("v"), vlen))
				buf := make([]byte, len("STORED\r\n"))
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "STORED\r\n" {
					t.Fatalf("set %s: %q, %v", key, buf, err)
				}
			}
			// One value at a time stays under the burst size.
			c1, c2 := dialSmall(t, addr), dialSmall(t, addr)
			set(c1, "a")
			set(c1, "b")
			waitBodies(t, s)
			if memcache.BodyBurst(s) {
				t.Fatal("one value at a time counted as a burst")
			}
			// Two at once pass it: c2's body is held while c1 sends.
			fmt.Fprintf(c2, "set c 0 0 %d\r\n", vlen)
			c2.Write(bytes.Repeat([]byte("v"), vlen/2))
			waitUntilBodies(t, s, func(n int64) bool { return n >= vlen })
			set(c1, "d")
			c2.Write(append(bytes.Repeat([]byte("v"), vlen/2), "\r\n"...))
			buf := make([]byte, len("STORED\r\n"))
			c2.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "STORED\r\n" {
				t.Fatalf("set c: %q, %v", buf, err)
			}
			waitBodies(t, s)
			deadline := time.Now().Add(10 * time.Second)
			for memcache.MemoryReturns(s) == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := memcache.MemoryReturns(s); got != 1 {
				t.Fatalf("MemoryReturns = %d after the burst, want 1", got)
			}
		})
	}
}

// waitBodies waits until s's connections hold no large request body.
func waitBodies(t *testing.T, s *memcache.Server) {
	t.Helper()
	waitUntilBodies(t, s, func(n int64) bool { return n == 0 })
}

func waitUntilBodies(t *testing.T, s *memcache.Server, ok func(int64) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(memcache.BodyBytes(s)) {
		if time.Now().After(deadline) {
			t.Fatalf("large bodies held: %d", memcache.BodyBytes(s))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStormReturnsMemory: once half of a crowd of connections (at least
// the storm size open at once) has left, the server returns memory to the
// system, once; connections that come and go a few at a time never make
// it do so.
func TestStormReturnsMemory(t *testing.T) {
	for _, loop := range []bool{false, true} {
		t.Run(fmt.Sprintf("loop=%v", loop), func(t *testing.T) {
			mt := memtest.New(time.Now)
			var be memcache.Backend = mt
			if loop {
				be = &batchBackend{asyncBackend: &asyncBackend{Backend: mt, mode: asyncGo}}
			}
			s := &memcache.Server{Backend: be, Logf: t.Logf, NoEventLoop: !loop}
			memcache.SetStallAge(s, 10*time.Millisecond)
			memcache.SetStormConns(s, 40)
			addr := memtest.StartServer(t, s)
			open := func(n int) []net.Conn {
				cs := make([]net.Conn, n)
				for i := range cs {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					cs[i] = c
					fmt.Fprintf(c, "version\r\n")
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					buf := make([]byte, 64)
					if n, err := c.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "VERSION ") {
						t.Fatalf("version: %q, %v", buf[:n], err)
					}
				}
				return cs
			}
			closeAll := func(cs []net.Conn) {
				for _, c := range cs {
					c.Close()
				}
				waitCond(t, "the connections gone", func() bool { cur, _ := s.Conns(); return cur == 0 })
			}
			// 30 at a time, twice: under the storm size.
			for i := 0; i < 2; i++ {
				closeAll(open(30))
			}
			if memcache.FreePending(s) || memcache.MemoryReturns(s) != 0 {
				t.Fatalf("30 connections at a time made a storm")
			}
			// 40 at once: their leaving is a storm.
			closeAll(open(40))
			waitCond(t, "memory returned", func() bool { return memcache.MemoryReturns(s) > 0 })
			if got := memcache.MemoryReturns(s); got != 1 {
				t.Fatalf("MemoryReturns = %d after one storm, want 1", got)
			}
		})
	}
}
