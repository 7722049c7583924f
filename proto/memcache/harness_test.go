package memcache_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// t0 is the fixed clock of transcript tests.
var t0 = time.Unix(1_800_000_000, 0)

func fixedClock() time.Time { return t0 }

// fakeConn is a net.Conn reading a canned request and recording replies.
type fakeConn struct {
	r io.Reader
	w bytes.Buffer
}

func (f *fakeConn) Read(p []byte) (int, error)  { return f.r.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f *fakeConn) Close() error                { return nil }
func (f *fakeConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 11211} }
func (f *fakeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (f *fakeConn) SetDeadline(t time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(t time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(t time.Time) error { return nil }

// readers are the ways a transcript's input is delivered.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"onebyte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
}

// newTestServer returns a server over a fresh fake backend on the fixed
// clock, with a small item limit so size errors are cheap to provoke.
func newTestServer(t testing.TB) (*memcache.Server, *memtest.Backend) {
	be := memtest.New(fixedClock)
	be.MaxItemSize = 1024
	s := &memcache.Server{Backend: be, Now: fixedClock, MaxItemSize: be.MaxItemSize}
	if testAsyncMode != asyncOff {
		s.Backend = &asyncBackend{Backend: be, mode: testAsyncMode}
	}
	if t != nil {
		s.Logf = t.Logf
	}
	return s, be
}

// converse feeds req to a fresh server connection through wrap and returns
// everything it wrote before the connection ended.
type ioReader = io.Reader

func converse(t testing.TB, req []byte, wrap func(io.Reader) io.Reader) []byte {
	return converseOn(t, req, wrap, nil)
}

// converseOn is converse on a server changed by setup (if not nil) first.
func converseOn(t testing.TB, req []byte, wrap func(io.Reader) io.Reader, setup func(*memcache.Server)) []byte {
	s, _ := newTestServer(t)
	if setup != nil {
		setup(s)
	}
	fc := &fakeConn{r: wrap(bytes.NewReader(req))}
	s.ServeConn(fc)
	return fc.w.Bytes()
}

type transcript struct {
	name string
	req  string
	want string
}

func runTranscripts(t *testing.T, cases []transcript) {
	t.Helper()
	runTranscriptsOn(t, cases, nil)
}

// runTranscriptsOn is runTranscripts on servers changed by setup.
func runTranscriptsOn(t *testing.T, cases []transcript, setup func(*memcache.Server)) {
	t.Helper()
	for _, tc := range cases {
		for _, rd := range readers {
			t.Run(tc.name+"/"+rd.name, func(t *testing.T) {
				got := converseOn(t, []byte(tc.req), rd.wrap, setup)
				if string(got) != tc.want {
					t.Errorf("request %q\n got %q\nwant %q", shorten(tc.req), got, tc.want)
				}
			})
		}
	}
}

func shorten(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// Binary packet builders.

func binReq(op byte, key, extras, value string, opaque uint32, cas uint64) string {
	return binPacket(0x80, op, 0, key, extras, value, opaque, cas)
}

func binRes(op byte, status uint16, key, extras, value string, opaque uint32, cas uint64) string {
	return binPacket(0x81, op, status, key, extras, value, opaque, cas)
}

func binPacket(magic, op byte, status uint16, key, extras, value string, opaque uint32, cas uint64) string {
	h := make([]byte, 24)
	h[0] = magic
	h[1] = op
	binary.BigEndian.PutUint16(h[2:], uint16(len(key)))
	h[4] = byte(len(extras))
	binary.BigEndian.PutUint16(h[6:], status)
	binary.BigEndian.PutUint32(h[8:], uint32(len(extras)+len(key)+len(value)))
	binary.BigEndian.PutUint32(h[12:], opaque)
	binary.BigEndian.PutUint64(h[16:], cas)
	return string(h) + extras + key + value
}

func be32(v uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return string(b[:])
}

func be64(v uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return string(b[:])
}

func cat(s ...string) string { return strings.Join(s, "") }
