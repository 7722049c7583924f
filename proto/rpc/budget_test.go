package rpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"kumofs/proto/msgpack"
)

// bigEcho is a request frame [0, 1, mEcho, [raw32 of n bytes]]; a prefix of
// it is an incomplete frame that will need n bytes of buffer.
func bigEcho(n int) []byte {
	b := []byte{0x94, 0x00, 0x01, mEcho, 0x91, 0xdb, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[6:], uint32(n))
	return append(b, bytes.Repeat([]byte("x"), n)...)
}

// closedWithin reports whether the server closes nc within d.
func closedWithin(nc net.Conn, d time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout() // EOF, or a reset: closed
}

// TestFrameMemoryLimit: incomplete frames of all connections together get
// at most Server.FrameMemory; a connection that needs more than is left
// waits for its call timeout and is closed; the budget comes back when
// the holder leaves, and then a large frame goes through.
func TestFrameMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	ts := startServer(t, &Server{FrameMemory: 6 * mib, CallTimeout: 300 * time.Millisecond})
	a := rawConn(t, ts.addr)
	a.Write(bigEcho(3 * mib)[:3*mib]) // holds 4 MiB of buffer (less the first 64 KiB)
	waitFor(t, "a's buffer", func() bool { return ts.srv.frameBudget().inUse() >= 3*mib })
	b := rawConn(t, ts.addr)
	b.Write(bigEcho(3 * mib)[:3*mib])
	if !closedWithin(b, 5*time.Second) {
		t.Fatal("the second large incomplete frame's connection is still open")
	}
	if !ts.log.contains("frame memory limit (6 MiB)") {
		t.Errorf("no log line: %q", ts.log.lines)
	}
	a.Close()
	waitFor(t, "a's budget back", func() bool { return ts.srv.frameBudget().inUse() == 0 })
	c := rawConn(t, ts.addr)
	frame := bigEcho(3 * mib)
	go c.Write(frame)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply := readValue(t, c)
	// [1, 1, nil, [raw32 ...]]: the echo of the params.
	if len(reply) != 4+len(frame)-4 || !bytes.Equal(reply[:4], []byte{0x94, 0x01, 0x01, 0xc0}) {
		t.Fatalf("reply %x… (%d bytes)", reply[:min(len(reply), 16)], len(reply))
	}
	if _, rest, err := msgpack.ReadArrayHeader(reply[4:]); err != nil || len(rest) != 3*mib+5 {
		t.Fatalf("echoed params: %d bytes, %v", len(rest), err)
	}
}

// TestFrameStalled: a connection whose large incomplete frame stops
// getting bytes is closed after frameStall, and gives its budget back;
// one that keeps sending slowly is not.
func TestFrameStalled(t *testing.T) {
	const mib = 1 << 20
	srv := &Server{FrameMemory: 64 * mib}
	srv.frameStall = time.Second
	ts := startServer(t, srv)
	frame := bigEcho(mib)
	slow := rawConn(t, ts.addr)
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		// 64 KiB every 100 ms: slower than the frame, faster than the stall.
		for i := 0; i < len(frame); i += 64 << 10 {
			if _, err := slow.Write(frame[i:min(i+64<<10, len(frame))]); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	stuck := rawConn(t, ts.addr)
	stuck.Write(frame[:mib/2])
	if !closedWithin(stuck, 10*time.Second) {
		t.Fatal("a stalled incomplete frame's connection is still open")
	}
	if !ts.log.contains("got no more bytes for 1s") {
		t.Errorf("no log line: %q", ts.log.lines)
	}
	<-slowDone
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	if reply := readValue(t, slow); !bytes.Equal(reply[:4], []byte{0x94, 0x01, 0x01, 0xc0}) {
		t.Fatalf("slow sender's reply %x…", reply[:min(len(reply), 16)])
	}
	waitFor(t, "budget back", func() bool { return ts.srv.frameBudget().inUse() < mib })
}

// TestServerMaxConns: connections over MaxConns are closed as they come,
// with one log line; the others are served.
func TestServerMaxConns(t *testing.T) {
	ts := startServer(t, &Server{MaxConns: 2})
	cl1 := dialTest(t, ts.addr, Options{})
	cl2 := dialTest(t, ts.addr, Options{})
	for _, cl := range []*Client{cl1, cl2} {
		if v, err := callInt(cl, mAdd, 1, 2); v != 3 || err != nil {
			t.Fatalf("add: %d, %v", v, err)
		}
	}
	for range 3 {
		if nc := rawConn(t, ts.addr); !closedWithin(nc, 5*time.Second) {
			t.Fatal("a connection over the limit is open")
		}
	}
	if !ts.log.contains("refusing connections: 2 open") {
		t.Errorf("no log line: %q", ts.log.lines)
	}
	if v, err := callInt(cl1, mAdd, 2, 2); v != 4 || err != nil {
		t.Fatalf("after refusals: %d, %v", v, err)
	}
}

// TestFrameEvicted: a connection whose large frame trickles in (a byte now
// and then, so the stall timeout never fires) holds budget that another
// connection's frame needs: the trickler is closed to make room once its
// frame has waited a second, and the other frame is served.
func TestFrameEvicted(t *testing.T) {
	const mib = 1 << 20
	ts := startServer(t, &Server{FrameMemory: 6 * mib, CallTimeout: 5 * time.Second})
	a := rawConn(t, ts.addr)
	frame := bigEcho(3 * mib)
	a.Write(frame[:3*mib])
	waitFor(t, "a's buffer", func() bool { return ts.srv.frameBudget().inUse() >= 3*mib })
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 3 * mib; i < len(frame); i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := a.Write(frame[i : i+1]); err != nil {
				return
			}
		}
	}()
	time.Sleep(evictAge) // a's frame must be this old to give way
	b := rawConn(t, ts.addr)
	go b.Write(frame)
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if reply := readValue(t, b); !bytes.Equal(reply[:4], []byte{0x94, 0x01, 0x01, 0xc0}) {
		t.Fatalf("b's reply %x…", reply[:min(len(reply), 16)])
	}
	if !closedWithin(a, 5*time.Second) {
		t.Fatal("the trickling connection is still open")
	}
	if !ts.log.contains("gives way to another connection's") {
		t.Errorf("no log line: %q", ts.log.lines)
	}
}
