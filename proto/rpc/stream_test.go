package rpc

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"testing/iotest"
	"time"

	"kumofs/proto/msgpack"
)

// slowReadConn is a net.Conn whose reads go through an io.Reader wrapper
// such as iotest.OneByteReader.
type slowReadConn struct {
	net.Conn
	r io.Reader
}

func (c slowReadConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// pipePair connects two Conns over net.Pipe; the wrap functions shape what
// each side's reads return.
func pipePair(t *testing.T, wrapA, wrapB func(io.Reader) io.Reader, handlerB Handler) (a, b *Conn) {
	t.Helper()
	pa, pb := net.Pipe()
	cfg := connConfig{maxFrame: DefaultMaxFrame, callTimeout: 30 * time.Second, writeTimeout: 5 * time.Second, logf: t.Logf}
	a = newConn(slowReadConn{pa, wrapA(pa)}, cfg)
	cfg.handler = handlerB
	b = newConn(slowReadConn{pb, wrapB(pb)}, cfg)
	a.start()
	b.start()
	t.Cleanup(func() {
		a.Close()
		b.Close()
		<-a.finished
		<-b.finished
	})
	return a, b
}

// TestOneByteReads runs calls over connections whose reads return one byte
// (or half the available bytes) at a time, so every frame is decoded from
// every possible split.
func TestOneByteReads(t *testing.T) {
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"OneByte": iotest.OneByteReader,
		"Half":    iotest.HalfReader,
	} {
		t.Run(name, func(t *testing.T) {
			a, _ := pipePair(t, wrap, wrap, testHandler(t))
			sizes := [][]byte{nil, []byte("k"), bytes.Repeat([]byte{1}, 40), bytes.Repeat([]byte{2}, 300)}
			if name == "Half" {
				sizes = append(sizes, bytes.Repeat([]byte{0xab}, 70000)) // raw32 on the wire
			}
			for _, p := range sizes {
				res, err := a.Call(context.Background(), mEcho, func(b []byte) []byte {
					b = msgpack.AppendArrayHeader(b, 2)
					b = msgpack.AppendRaw(b, p)
					return msgpack.AppendInt(b, -1000)
				})
				if err != nil {
					t.Fatal(err)
				}
				want := msgpack.AppendInt(msgpack.AppendRaw(msgpack.AppendArrayHeader(nil, 2), p), -1000)
				if !bytes.Equal(res.Bytes(), want) {
					t.Fatalf("echo of %d bytes differs", len(p))
				}
				res.Release()
			}
		})
	}
}

// discardConn feeds fixed input to a Conn and discards its writes.
type discardConn struct {
	r io.Reader
}

func (c discardConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c discardConn) Close() error                     { return nil }
func (c discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (c discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (c discardConn) SetDeadline(time.Time) error      { return nil }
func (c discardConn) SetReadDeadline(time.Time) error  { return nil }
func (c discardConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReadFrames feeds arbitrary bytes to a connection's read loop, with a
// small MaxFrame, one byte per read. It must never panic; it must end with
// an error (EOF at least).
func FuzzReadFrames(f *testing.F) {
	_, frames := goldenFrames()
	f.Add(bytes.Join(frames, nil))
	f.Add([]byte{0xc1})
	f.Add([]byte{0x94, 0x00, 0x01, 0x02, 0x92, 0x01, 0x02, 0x94, 0x00, 0x02, 0x07, 0x90})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x00})
	f.Add([]byte{0x94, 0x01, 0x01, 0xc3, 0xc0, 0x93, 0x02, 0xa0, 0x01})
	h := testHandler(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, oneByte := range []bool{false, true} {
			var r io.Reader = bytes.NewReader(in)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			c := newConn(discardConn{r}, connConfig{
				handler: HandlerFunc(func(req *Request) {
					if req.Method == mSlow || req.Method == mPush {
						req.ReplyError(&Error{Code: CodeProtocol}) // no goroutines in the fuzzer
						return
					}
					h.ServeRPC(req)
				}),
				onHello:      func(c *Conn, h Hello) *Hello { return &h },
				maxFrame:     256,
				callTimeout:  time.Second,
				writeTimeout: time.Second,
				logf:         func(string, ...any) {},
			})
			if err := c.readFrames(); err == nil {
				t.Fatal("readFrames returned nil")
			}
		}
	})
}
