package memcache_test

import (
	"net"
	"os"
	"os/signal"
	"testing"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// TestServeForBench serves the front end over the in-memory backend on
// $KUMO_MEMCACHE_BENCH_ADDR until interrupted, for load tools such as
// memcaslap (see BENCHMARKS.md). Skipped unless the variable is set.
func TestServeForBench(t *testing.T) {
	addr := os.Getenv("KUMO_MEMCACHE_BENCH_ADDR")
	if addr == "" {
		t.Skip("KUMO_MEMCACHE_BENCH_ADDR not set")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &memcache.Server{Backend: memtest.New(nil)}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	go func() {
		<-sig
		s.Close()
	}()
	if err := s.Serve(l); err != memcache.ErrServerClosed {
		t.Fatal(err)
	}
}
