package memcache_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// gateBackend holds the first Get until the test lets it go, and counts
// the Gets. It embeds the Backend interface only, so the server sees no
// batch or multi-get support and serves pipelined gets one by one.
type gateBackend struct {
	memcache.Backend
	gets    atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (b *gateBackend) Get(ctx context.Context, key, dst []byte, it *memcache.Item) error {
	if b.gets.Add(1) == 1 {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.Backend.Get(ctx, key, dst, it)
}

// Ensure that a client that pipelines gets and resets the connection is
// served none of the gets still buffered once the reset is seen: their
// replies cannot be written, and a gateway would fetch each value from the
// servers for nothing (2000 such clients asking for 1 MB values took a
// kumo-gateway to gigabytes and stalled every other client).
func TestResetClientPipelineNotServed(t *testing.T) {
	for _, proto := range []string{"text", "binary"} {
		t.Run(proto, func(t *testing.T) {
			be := &gateBackend{Backend: memtest.New(nil), entered: make(chan struct{}, 1), release: make(chan struct{})}
			s := &memcache.Server{Backend: be}
			addr := memtest.StartServer(t, s)
			var it memcache.Item
			it.Key, it.Value = []byte("k"), []byte("v")
			if _, err := be.Backend.Store(context.Background(), memcache.ModeSet, &it); err != nil {
				t.Fatal(err)
			}
			req := strings.Repeat("get k\r\n", 20)
			if proto == "binary" {
				var b []byte
				for range 20 {
					h := make([]byte, 24)
					h[0], h[1] = 0x80, 0x00 // GET
					binary.BigEndian.PutUint16(h[2:], 1)
					binary.BigEndian.PutUint32(h[8:], 1)
					b = append(append(b, h...), 'k')
				}
				req = string(b)
			}
			c := dial(t, addr)
			if _, err := c.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			select {
			case <-be.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the first get never reached the backend")
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close() // a reset, with 19 gets buffered on the server
			// The reset must have reached the server's socket before the
			// first get returns; on loopback it does as Close returns.
			close(be.release)
			deadline := time.Now().Add(10 * time.Second)
			for {
				if cur, _ := s.Conns(); cur == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the reset connection is still open")
				}
				time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
			}
			if n := be.gets.Load(); n != 1 {
				t.Fatalf("%d gets reached the backend, want 1 (the one under way when the client reset)", n)
			}
		})
	}
}

// Ensure that a client that shuts down its sending side after a pipeline
// (`printf 'get a\r\nget b\r\n' | nc -N`) still gets every reply, in order:
// a half-closed client is served one request at a time, not dropped.
func TestHalfClosedClientServed(t *testing.T) {
	for _, proto := range []string{"text", "binary"} {
		t.Run(proto, func(t *testing.T) {
			addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil)})
			c := dial(t, addr)
			req := "set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\n" + strings.Repeat("get a\r\nget b\r\n", 8)
			want := "STORED\r\nSTORED\r\n" + strings.Repeat("VALUE a 0 1\r\n1\r\nEND\r\nVALUE b 0 1\r\n2\r\nEND\r\n", 8)
			if proto == "binary" {
				var b []byte
				for i := range 16 {
					h := make([]byte, 24)
					h[0], h[1] = 0x80, 0x0c // GETK
					binary.BigEndian.PutUint16(h[2:], 1)
					binary.BigEndian.PutUint32(h[8:], 1)
					binary.BigEndian.PutUint32(h[12:], uint32(i)) // opaque
					b = append(append(b, h...), "ab"[i%2])
				}
				req, want = string(b), ""
			}
			if _, err := c.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if proto == "text" {
				if string(got) != want {
					t.Fatalf("got %q\nwant %q", got, want)
				}
				return
			}
			// 16 GETK misses (nothing stored over binary): each a 24-byte
			// header and its key, opaques in order.
			if len(got) != 16*25 {
				t.Fatalf("got %d bytes, want %d: %x", len(got), 16*25, got)
			}
			for i := range 16 {
				h := got[i*25:]
				if h[0] != 0x81 || h[1] != 0x0c || binary.BigEndian.Uint16(h[6:]) != 1 || binary.BigEndian.Uint32(h[12:]) != uint32(i) {
					t.Fatalf("reply %d: %x", i, h[:25])
				}
			}
		})
	}
}
