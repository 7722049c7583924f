package rpc

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/proto/msgpack"
)

// countingConn counts Write calls (each is one write syscall on a TCP conn).
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{nc, l.writes}, nil
}

// BenchmarkCall16 runs 16 concurrent callers doing small calls (a Get-sized
// request, a 30-byte result) over one loopback connection, and reports
// calls/s and write syscalls per call on each side. Allocations are for
// both sides together (client and server run in this process).
//
//	go test -run XXX -bench Call -benchtime 200000x ./proto/rpc/
func BenchmarkCall16(b *testing.B) { benchCalls(b, 16) }

// BenchmarkCall1 is one caller: the latency of a round trip.
func BenchmarkCall1(b *testing.B) { benchCalls(b, 1) }

func benchCalls(b *testing.B, callers int) {
	var srvWrites, cliWrites atomic.Int64
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 30)
	srv := &Server{Logf: b.Logf, Handler: HandlerFunc(func(req *Request) {
		req.Reply(func(p []byte) []byte { return msgpack.AppendRaw(p, value) })
	})}
	go srv.Serve(countingListener{l, &srvWrites})
	defer srv.Close()
	d := net.Dialer{}
	cl := Dial(l.Addr().String(), Options{
		Logf: b.Logf,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			nc, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return countingConn{nc, &cliWrites}, nil
		},
	})
	defer cl.Close()
	key := []byte("0123456789abcdefkey:000000")
	args := func(p []byte) []byte {
		p = msgpack.AppendArrayHeader(p, 1)
		return msgpack.AppendRaw(p, key)
	}
	ctx := context.Background()
	if res, err := cl.Call(ctx, 34, args); err != nil {
		b.Fatal(err)
	} else {
		res.Release()
	}
	srvWrites.Store(0)
	cliWrites.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				res, err := cl.Call(ctx, 34, args)
				if err != nil {
					b.Error(err)
					return
				}
				res.Release()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(cliWrites.Load())/float64(b.N), "cli-writes/call")
	b.ReportMetric(float64(srvWrites.Load())/float64(b.N), "srv-writes/call")
}
