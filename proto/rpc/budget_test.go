package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"kumofs/internal/loglimit"
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
	srv := &Server{FrameMemory: 6 * mib, CallTimeout: 300 * time.Millisecond}
	srv.frameEvictAge = time.Hour // no frame is old enough to give way
	ts := startServer(t, srv)
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
	readEcho(t, c, frame)
}

// readEcho reads the reply to bigEcho's frame from c and checks it:
// [1, 1, nil, [raw32 ...]], the echo of the params, as long as the request.
// It reads the reply whole, not a byte per read as readValue does (3 Mi
// reads took over 10 s on a loaded machine).
func readEcho(t *testing.T, c net.Conn, frame []byte) {
	t.Helper()
	reply := make([]byte, len(frame))
	if n, err := io.ReadFull(c, reply); err != nil {
		t.Fatalf("reply: %d of %d bytes: %v", n, len(reply), err)
	}
	if rest, err := msgpack.Skip(reply); err != nil || len(rest) != 0 || !bytes.Equal(reply[:4], []byte{0x94, 0x01, 0x01, 0xc0}) {
		t.Fatalf("reply %x… (%d bytes): %v, %d bytes left", reply[:16], len(reply), err, len(rest))
	}
	if !bytes.Equal(reply[4:], frame[4:]) {
		t.Fatal("the echoed params differ from the request's")
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
	readEcho(t, slow, frame)
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
	srv := &Server{FrameMemory: 6 * mib, CallTimeout: 5 * time.Second}
	srv.frameEvictAge = 100 * time.Millisecond
	ts := startServer(t, srv)
	a := rawConn(t, ts.addr)
	frame := bigEcho(3 * mib)
	a.Write(frame[:2*mib]) // its buffer grows to 4 MiB for the rest
	waitFor(t, "a's buffer", func() bool { return ts.srv.frameBudget().inUse() >= 3*mib })
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 2 * mib; i < len(frame); i++ { // a megabyte at 10 bytes a second: never done
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
	time.Sleep(srv.frameEvictAge) // a's frame must be this old to give way
	b := rawConn(t, ts.addr)
	go b.Write(frame)
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	readEcho(t, b, frame)
	if !closedWithin(a, 5*time.Second) {
		t.Fatalf("the trickling connection is still open; log %q", ts.log.lines)
	}
	if !ts.log.contains("gives way to another connection's") {
		t.Errorf("no log line: %q", ts.log.lines)
	}
}

// TestRepliesOwedAcrossConns: peers that pipeline requests for large
// replies and read none make the server stop taking their requests once
// the replies owed on all connections pass the server's limit, each at
// about one reply instead of replyHigh (32 MiB here); a peer that reads is
// still answered.
func TestRepliesOwedAcrossConns(t *testing.T) {
	const size = 256 << 10
	payload := bytes.Repeat([]byte("v"), size)
	srv := &Server{
		MaxFrame: 64 << 20, // replyHigh 32 MiB
		Handler: HandlerFunc(func(req *Request) {
			req.Reply(func(b []byte) []byte { return msgpack.AppendRaw(b, payload) })
		}),
	}
	srv.MaxReplies = 4 << 20
	ts := startServer(t, srv)
	const n = 8
	for range n {
		pipelineRequests(t, dialSmall(t, ts.addr), 200) // 50 MiB of replies each
	}
	waitFor(t, "every non-reading connection congested", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		k := 0
		for c := range srv.conns {
			if c.congested.Load() {
				k++
			}
		}
		return k == n
	})
	if got, most := srv.replies.Load(), int64(4<<20+n*2*size); got > most {
		t.Errorf("replies owed: %d bytes, want at most %d", got, most)
	}
	cl := dialTest(t, ts.addr, Options{})
	res, err := cl.Call(context.Background(), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _, err := msgpack.ReadRaw(res.Bytes()); err != nil || len(raw) != size {
		t.Fatalf("reply of %d bytes, %v", len(raw), err)
	}
	res.Release()
}

// dialSmall connects with a small receive buffer, so that replies back up
// in the server soon; closed when the test ends.
func dialSmall(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return nil
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// TestServerMaxConnsSilentGiveWay: at MaxConns, a newcomer takes the place
// of the oldest connection that has sent nothing for a second, so idle
// strangers cannot keep peers and tools out.
func TestServerMaxConnsSilentGiveWay(t *testing.T) {
	ts := startServer(t, &Server{MaxConns: 2})
	old := rawConn(t, ts.addr)
	waitFor(t, "the first silent conn", func() bool { return ts.srv.Conns() == 1 })
	newer := rawConn(t, ts.addr)
	waitFor(t, "both silent conns", func() bool { return ts.srv.Conns() == 2 })
	time.Sleep(silentAge) // both silent long enough
	cl := dialTest(t, ts.addr, Options{})
	if v, err := callInt(cl, mAdd, 1, 2); v != 3 || err != nil {
		t.Fatalf("add over the limit: %d, %v", v, err)
	}
	if !closedWithin(old, 5*time.Second) {
		t.Fatal("the oldest silent connection is still open")
	}
	newer.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := newer.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the newer silent connection: %v, want it open", err)
	}
}

// TestConnLinesLimited: connections closed for a malformed frame log at most
// loglimit.Burst lines a minute, so whoever reaches the port cannot fill
// the disk.
func TestConnLinesLimited(t *testing.T) {
	ts := startServer(t, &Server{})
	for i := 0; i < 3*loglimit.Burst; i++ {
		nc := rawConn(t, ts.addr)
		nc.Write([]byte{0xc1, 0xc1, 0xc1}) // never a msgpack value
		if !closedWithin(nc, 5*time.Second) {
			t.Fatalf("connection %d with a malformed frame still open", i)
		}
		nc.Close()
	}
	waitFor(t, "the lines", func() bool {
		ts.log.mu.Lock()
		defer ts.log.mu.Unlock()
		return len(ts.log.lines) >= loglimit.Burst
	})
	ts.log.mu.Lock()
	defer ts.log.mu.Unlock()
	n := 0
	for _, l := range ts.log.lines {
		if strings.Contains(l, "malformed frame") {
			n++
		}
	}
	if n != loglimit.Burst {
		t.Fatalf("%d malformed-frame lines for %d connections, want %d: %q", n, 3*loglimit.Burst, loglimit.Burst, ts.log.lines)
	}
}
