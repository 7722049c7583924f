package memcache_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// loopConn serves the same request n times, then io.EOF; replies are
// counted and dropped.
type loopConn struct {
	req     []byte
	off     int
	left    int
	written int64
}

func (l *loopConn) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && l.left > 0 {
		k := copy(p[n:], l.req[l.off:])
		n += k
		l.off += k
		if l.off == len(l.req) {
			l.off = 0
			l.left--
		}
	}
	if n == 0 {
		return 0, net.ErrClosed
	}
	return n, nil
}
func (l *loopConn) Write(p []byte) (int, error)        { l.written += int64(len(p)); return len(p), nil }
func (l *loopConn) Close() error                       { return nil }
func (l *loopConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (l *loopConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (l *loopConn) SetDeadline(t time.Time) error      { return nil }
func (l *loopConn) SetReadDeadline(t time.Time) error  { return nil }
func (l *loopConn) SetWriteDeadline(t time.Time) error { return nil }

var value1K = bytes.Repeat([]byte("v"), 1024)

// benchServe measures parse + backend + reply of req, one request per op,
// through a whole connection (reader, writer and buffers are pooled; the
// per-connection setup is amortised over b.N).
func benchServe(b *testing.B, req string, wantPerOp int) {
	be := memtest.New(nil)
	it := memcache.Item{Key: []byte("key:000001"), Value: value1K}
	if _, err := be.Store(context.Background(), memcache.ModeSet, &it); err != nil {
		b.Fatal(err)
	}
	s := &memcache.Server{Backend: be}
	// Warm the pools and the backend's value array.
	s.ServeConn(&loopConn{req: []byte(req), left: 100})
	lc := &loopConn{req: []byte(req), left: b.N}
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	b.ResetTimer()
	s.ServeConn(lc)
	b.StopTimer()
	if wantPerOp > 0 && lc.written != int64(wantPerOp)*int64(b.N) {
		b.Fatalf("wrote %d bytes for %d ops, want %d per op", lc.written, b.N, wantPerOp)
	}
}

func BenchmarkTextGet1K(b *testing.B) {
	benchServe(b, "get key:000001\r\n", len("VALUE key:000001 0 1024\r\n")+1024+len("\r\nEND\r\n"))
}

func BenchmarkTextSet1K(b *testing.B) {
	benchServe(b, "set key:000001 0 0 1024\r\n"+string(value1K)+"\r\n", len("STORED\r\n"))
}

func BenchmarkMetaGet1K(b *testing.B) {
	benchServe(b, "mg key:000001 v f c\r\n", 0)
}

func BenchmarkBinaryGet1K(b *testing.B) {
	benchServe(b, binReq(0x00, "key:000001", "", "", 1, 0), 24+4+1024)
}

func BenchmarkBinarySet1K(b *testing.B) {
	benchServe(b, binReq(0x01, "key:000001", setExtras(0, 0), string(value1K), 1, 0), 24)
}

// BenchmarkTextGetPipelined16 sends 16 gets per request batch.
func BenchmarkTextGetPipelined16(b *testing.B) {
	benchServe(b, strings.Repeat("get key:000001\r\n", 16), 16*(len("VALUE key:000001 0 1024\r\n")+1024+len("\r\nEND\r\n")))
}
