package rpc

import (
	"bytes"
	"context"
	"testing"
	"time"

	"kumofs/proto/msgpack"
)

// TestTrimLargeBuffers: a connection that wrote a large frame keeps its
// large write buffer, lets go of it once no write has used it for
// trimAfter, works on, and a later large write grows and keeps one again.
func TestTrimLargeBuffers(t *testing.T) {
	old := trimAfter
	t.Cleanup(func() { trimAfter = old }) // last: after the conns closed
	trimAfter = 2 * time.Second
	ts := startServer(t, &Server{Handler: testHandler(t)})
	cl := dialTest(t, ts.addr, Options{})
	big := bytes.Repeat([]byte("v"), 3<<20)
	args := func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendRaw(b, big)
	}
	large := func(c *Conn) int {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return max(cap(c.spare), cap(c.wbuf))
	}
	for round := 0; round < 2; round++ {
		start := time.Now()
		res, err := cl.Call(context.Background(), mEcho, args)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(res.Bytes()); n < len(big) {
			t.Fatalf("echo of %d bytes: %d back", len(big), n)
		}
		res.Release()
		c := cl.Conn()
		switch n := large(c); {
		case n >= len(big):
		case time.Since(start) > trimAfter/2:
			t.Logf("round %d: the echo took %v; the buffer may have gone already", round, time.Since(start))
		default:
			t.Fatalf("round %d: largest write buffer %d after a %d-byte frame: not kept", round, n, len(big))
		}
		// Nothing more is written: the buffer goes after trimAfter.
		deadline := time.Now().Add(10 * time.Second)
		for large(c) > keepSmall {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: write buffer of %d bytes still held", round, large(c))
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := callInt(cl, mAdd, 1, 2); err != nil {
			t.Fatalf("a call after the trim: %v", err)
		}
	}
}
