package rpc

import (
	"net"
	netrpc "net/rpc"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// KV is the net/rpc service of the anchor benchmark.
type KV struct{ value []byte }

// Get returns a 30-byte value, like BenchmarkCall16's handler.
func (s *KV) Get(key []byte, reply *[]byte) error {
	*reply = s.value
	return nil
}

// BenchmarkNetRPC16 is the anchor: the standard library's net/rpc (gob) with
// the same 16 callers, request and value sizes and write counting.
func BenchmarkNetRPC16(b *testing.B) {
	const callers = 16
	var srvWrites, cliWrites atomic.Int64
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	s := netrpc.NewServer()
	if err := s.Register(&KV{value: make([]byte, 30)}); err != nil {
		b.Fatal(err)
	}
	go s.Accept(countingListener{l, &srvWrites})
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	cl := netrpc.NewClient(countingConn{nc, &cliWrites})
	defer cl.Close()
	key := []byte("0123456789abcdefkey:000000")
	var reply []byte
	if err := cl.Call("KV.Get", key, &reply); err != nil {
		b.Fatal(err)
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
			var reply []byte
			for next.Add(1) <= int64(b.N) {
				if err := cl.Call("KV.Get", key, &reply); err != nil {
					b.Error(err)
					return
				}
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
