package rpc

import (
	"bytes"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/proto/msgpack"
)

// rawConn dials addr for hand-written frames.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// readValue reads one msgpack value from r.
func readValue(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var buf []byte
	one := make([]byte, 1)
	for {
		if len(buf) > 0 {
			if rest, err := msgpack.Skip(buf); err == nil && len(rest) == 0 {
				return buf
			} else if err != msgpack.ErrShort {
				t.Fatalf("bad value %x… (%d bytes): %v", buf[:min(len(buf), 64)], len(buf), err)
			}
		}
		if _, err := io.ReadFull(r, one); err != nil {
			t.Fatalf("read after %x… (%d bytes): %v", buf[:min(len(buf), 64)], len(buf), err)
		}
		buf = append(buf, one[0])
	}
}

// TestBadFramesCloseOnlyThatConn sends each kind of bad frame on its own
// connection and checks that connection closes with a log line while
// another client keeps working.
func TestBadFramesCloseOnlyThatConn(t *testing.T) {
	ts := startServer(t, &Server{MaxFrame: 1024})
	good := dialTest(t, ts.addr, Options{})
	if _, err := callInt(good, mAdd, 1, 1); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, frame, log string
	}{
		{"garbage", "c1c1c1", "malformed frame"},
		{"garbage after good", "9400010190c1", "malformed frame"},
		{"not array", "07", "not an array"},
		{"unknown type", "9405010203", "type 5 with 4 elements"},
		{"short request", "93000101", "type 0 with 3 elements"},
		{"string msgid", "9400a1610190", "bad request msgid"},
		{"negative method", "940001ff90", "bad request method"},
		{"hello role", "9302a0cd0100", "bad hello role"},
		{"oversize raw", "db00100000" + strings.Repeat("00", 1100), "frame larger than 1024"},
		{"oversize complete", "dc0401" + strings.Repeat("00", 1025), "larger than 1024"},
		{"length bomb", "ddffffffff" + strings.Repeat("00", 1100), "frame larger than 1024"},
	}
	for _, tt := range tests {
		nc := rawConn(t, ts.addr)
		b, _ := hex.DecodeString(tt.frame)
		nc.Write(b)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		rest, err := io.ReadAll(nc)
		if err != nil {
			t.Errorf("%s: read: %v", tt.name, err)
		}
		if tt.name == "garbage after good" {
			// The good request before the garbage was answered.
			if !bytes.HasPrefix(rest, []byte{0x94, 0x01, 0x01, 0xc0}) {
				t.Errorf("%s: got %x", tt.name, rest)
			}
		} else if len(rest) != 0 {
			t.Errorf("%s: got reply %x", tt.name, rest)
		}
		if !ts.log.contains(tt.log) {
			t.Errorf("%s: no log line %q in %q", tt.name, tt.log, ts.log.lines)
		}
		if v, err := callInt(good, mAdd, 2, 3); v != 5 || err != nil {
			t.Fatalf("%s: other connection broken: %d, %v", tt.name, v, err)
		}
	}
	waitFor(t, "bad conns closed", func() bool { return ts.srv.Conns() == 1 })
}

// TestParamsNotArray gets a CodeProtocol reply and keeps the connection.
func TestParamsNotArray(t *testing.T) {
	ts := startServer(t, &Server{})
	nc := rawConn(t, ts.addr)
	nc.Write([]byte{0x94, 0x00, 0x05, 0x01, 0x07}) // params = 7
	if got := hex.EncodeToString(readValue(t, nc)); got != "940105"+"05"+"c0" {
		t.Fatalf("reply %s", got)
	}
	nc.Write([]byte{0x94, 0x00, 0x06, 0x02, 0x92, 0x01, 0x02})
	if got := hex.EncodeToString(readValue(t, nc)); got != "940106c003" {
		t.Fatalf("reply %s", got)
	}
}

// TestUnknownMsgIDDropped sends responses nobody asked for.
func TestUnknownMsgIDDropped(t *testing.T) {
	ts := startServer(t, &Server{})
	nc := rawConn(t, ts.addr)
	nc.Write([]byte{0x94, 0x01, 0x33, 0xc0, 0x01}) // response to msgid 0x33
	nc.Write([]byte{0x94, 0x00, 0x01, 0x02, 0x92, 0x01, 0x02})
	if got := hex.EncodeToString(readValue(t, nc)); got != "940101c003" {
		t.Fatalf("reply %s", got)
	}
}

// TestMsgIDsStartAtOne checks the client's request bytes: msgids 1, 2, ...
func TestMsgIDsStartAtOne(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cl := dialTest(t, l.Addr().String(), Options{Hello: &Hello{Addr: []byte{1, 2, 3, 4, 5, 6}, Role: 1}})
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitFor(t, "client up", func() bool { return cl.Conn() != nil })
	for i := range 3 {
		cl.Go(uint32(100+i), func(b []byte) []byte { return msgpack.AppendArrayHeader(b, 0) }, 0, func([]byte, error) {})
	}
	want := []string{"9302a6010203040506" + "01", "9400016490", "9400026590", "9400036690"}
	for _, w := range want {
		if got := hex.EncodeToString(readValue(t, nc)); got != w {
			t.Fatalf("frame %s, want %s", got, w)
		}
	}
	// Responses in reverse order are matched by msgid.
	res := make(chan int64, 3)
	for i := range 3 {
		cl.Go(uint32(100+i), nil, 0, func(b []byte, err error) {
			v, _, _ := msgpack.ReadInt(b)
			res <- v*10 + int64(i)
		})
	}
	for range 3 {
		readValue(t, nc)
	}
	nc.Write(mustHex("9401 06 c0 16   9401 05 c0 15   9401 04 c0 14"))
	got := map[int64]bool{<-res: true, <-res: true, <-res: true}
	if !got[0x14*10+0] || !got[0x15*10+1] || !got[0x16*10+2] {
		t.Fatalf("results %v", got)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// TestClientMaxFrame: an oversized response closes the client's connection
// (pending call fails with ErrConnLost, a log line is written) and the
// client reconnects.
func TestClientMaxFrame(t *testing.T) {
	big := make([]byte, 4096)
	ts := startServer(t, &Server{Handler: HandlerFunc(func(req *Request) {
		if req.Method == mEcho {
			req.Reply(func(b []byte) []byte { return msgpack.AppendRaw(b, big) })
			return
		}
		testHandler(t).ServeRPC(req)
	})})
	lb := &logBuf{}
	var ups atomic.Int32
	cl := dialTest(t, ts.addr, Options{MaxFrame: 1024, Logf: lb.logf, OnUp: func(*Conn) { ups.Add(1) }})
	if _, err := callInt(cl, mEcho); err != ErrConnLost {
		t.Fatalf("oversized response: %v, want ErrConnLost", err)
	}
	if !lb.contains("frame larger than 1024") {
		t.Errorf("log: %q", lb.lines)
	}
	waitFor(t, "reconnect", func() bool { return ups.Load() == 2 && cl.Conn() != nil })
	if v, err := callInt(cl, mAdd, 2, 2); v != 4 || err != nil {
		t.Fatalf("after reconnect: %d, %v", v, err)
	}
}
