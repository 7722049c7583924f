package rpc

import (
	"bytes"
	"net"
	"testing"
	"time"

	"kumofs/proto/msgpack"
)

// bigReplyServer starts a server whose every reply carries size bytes, with
// 64 KiB frames: its backlog limit is 1 MiB, and it pauses at 256 KiB of
// replies owed.
func bigReplyServer(t *testing.T, size int, writeTimeout time.Duration) *testServer {
	payload := bytes.Repeat([]byte("v"), size)
	return startServer(t, &Server{
		MaxFrame:     64 << 10,
		WriteTimeout: writeTimeout,
		Handler: HandlerFunc(func(req *Request) {
			req.Reply(func(b []byte) []byte { return msgpack.AppendRaw(b, payload) })
		}),
	})
}

// pipelineRequests writes n requests (msgids 0..n-1, method 1) in one write.
func pipelineRequests(t *testing.T, nc net.Conn, n int) {
	var b []byte
	for i := 0; i < n; i++ {
		b = msgpack.AppendArrayHeader(b, 4)
		b = msgpack.AppendUint(b, typeRequest)
		b = msgpack.AppendUint(b, uint64(i))
		b = msgpack.AppendUint(b, 1)
		b = msgpack.AppendArrayHeader(b, 0)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestReplyBacklogSlowsPeer: a peer that asks at once for far more than the
// backlog limit in replies, and reads them, gets every one (as a gateway
// whose clients all get large values at the same moment): the server stops
// taking its requests while the replies owed are large, instead of cutting
// the connection at the limit.
func TestReplyBacklogSlowsPeer(t *testing.T) {
	ts := bigReplyServer(t, 60<<10, 0)
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	const n = 200 // 12 MiB of replies, 12 times the backlog limit
	pipelineRequests(t, nc, n)
	var buf []byte
	chunk := make([]byte, 64<<10)
	for got := 0; got < n; {
		rest, err := msgpack.Skip(buf)
		if err == nil {
			frame := buf[:len(buf)-len(rest)]
			_, b, _ := msgpack.ReadArrayHeader(frame)
			_, b, _ = msgpack.ReadUint(b)
			id, b, _ := msgpack.ReadUint(b)
			if id != uint64(got) || b[0] != 0xc0 {
				t.Fatalf("reply %d: msgid %d, error slot %x", got, id, b[0])
			}
			got++
			buf = rest
			continue
		}
		m, err := nc.Read(chunk)
		if err != nil {
			t.Fatalf("after %d replies: %v; log %q", got, err, ts.log.lines)
		}
		buf = append(buf, chunk[:m]...)
	}
	if ts.log.contains("wait to be written") {
		t.Fatalf("log %q", ts.log.lines)
	}
}

// TestReplyBacklogPeerNeverReads: a peer that asks for a lot and reads
// nothing is cut off by the write timeout while the server waits for it,
// with its backlog held near the pause mark.
func TestReplyBacklogPeerNeverReads(t *testing.T) {
	ts := bigReplyServer(t, 60<<10, 200*time.Millisecond)
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pipelineRequests(t, nc, 200)
	waitFor(t, "the server to accept", func() bool { return ts.srv.Accepted() == 1 })
	waitFor(t, "the server to drop the conn", func() bool { return ts.srv.Conns() == 0 })
	if ts.log.contains("wait to be written") {
		t.Fatalf("closed by the backlog limit, not the write timeout: %q", ts.log.lines)
	}
}
