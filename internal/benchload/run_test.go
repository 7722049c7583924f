package benchload

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// startMemtest serves b over the memcached protocols on 127.0.0.1.
func startMemtest(t *testing.T, b memcache.Backend) string {
	t.Helper()
	return memtest.StartServer(t, &memcache.Server{Backend: b})
}

func TestRunAgainstMemtest(t *testing.T) {
	addr := startMemtest(t, memtest.New(nil))
	tests := []struct {
		name string
		cfg  Config
	}{
		{"text", Config{Conns: 4, Pipeline: 1, GetRatio: 0.9, ValueSize: 100}},
		{"text pipelined verify", Config{Conns: 4, Pipeline: 8, GetRatio: 0.5, ValueSize: 64, Verify: true}},
		{"text mget zipf verify", Config{Conns: 3, Pipeline: 2, GetRatio: 0.7, ValueSize: 64, MultiGet: 5, Zipf: 1.2, Verify: true}},
		{"binary", Config{Binary: true, Conns: 4, Pipeline: 4, GetRatio: 0.9, ValueSize: 100}},
		{"binary mget verify", Config{Binary: true, Conns: 4, Pipeline: 3, GetRatio: 0.6, ValueSize: 64, MultiGet: 4, Verify: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Addr = addr
			cfg.Keys = 200
			cfg.Ops = 3001
			cfg.Preload = true
			cfg.Seed = 42
			cfg.KeyPrefix = strings.ReplaceAll(tt.name, " ", "-") + ":"
			if cfg.MultiGet == 0 {
				cfg.MultiGet = 1
			}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != 3001 || res.Gets+res.Sets != 3001 || res.Latency.Count() != 3001 {
				t.Fatalf("ops %d gets %d sets %d latencies %d, want 3001", res.Ops, res.Gets, res.Sets, res.Latency.Count())
			}
			if res.Errors != 0 || res.Wrong != 0 || res.PreloadErrors != 0 || res.Reconnects != 0 {
				t.Fatalf("errors %d wrong %d (%v) preload errors %d reconnects %d",
					res.Errors, res.Wrong, res.WrongSamples, res.PreloadErrors, res.Reconnects)
			}
			if res.Preloaded != 200 {
				t.Fatalf("preloaded %d, want 200", res.Preloaded)
			}
			if res.Misses != 0 || res.Hits != res.Gets*uint64(cfg.MultiGet) {
				t.Fatalf("hits %d misses %d for %d gets of %d keys", res.Hits, res.Misses, res.Gets, cfg.MultiGet)
			}
			if res.Sets == 0 || res.Gets == 0 {
				t.Fatalf("no mix: gets %d sets %d", res.Gets, res.Sets)
			}
		})
	}
}

// TestVerifyContended drives few keys from many connections with sets in
// flight on other connections while gets read them: a correct store must
// give zero wrong values.
func TestVerifyContended(t *testing.T) {
	addr := startMemtest(t, memtest.New(nil))
	for _, binary := range []bool{false, true} {
		res, err := Run(context.Background(), Config{
			Addr: addr, Binary: binary, Conns: 8, Pipeline: 4, GetRatio: 0.5, ValueSize: 40,
			Keys: 10, MultiGet: 3, Ops: 8000, Verify: true, Seed: 7,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Wrong != 0 || res.Errors != 0 {
			t.Fatalf("binary=%v: wrong %d %v errors %d", binary, res.Wrong, res.WrongSamples, res.Errors)
		}
	}
}

// liar is a Backend that breaks the memcached contract in one way.
type liar struct {
	*memtest.Backend
	n    atomic.Int64
	mode string
}

func (l *liar) Store(ctx context.Context, mode memcache.StoreMode, it *memcache.Item) (uint64, error) {
	// stale: every third set is acknowledged but not applied.
	if l.mode == "stale" && l.n.Add(1)%3 == 0 {
		return 1, nil
	}
	return l.Backend.Store(ctx, mode, it)
}

func (l *liar) Get(ctx context.Context, key, dst []byte, it *memcache.Item) error {
	switch l.mode {
	case "lost":
		if l.n.Add(1)%5 == 0 {
			return memcache.ErrNotFound
		}
	case "corrupt":
		if err := l.Backend.Get(ctx, key, dst, it); err != nil {
			return err
		}
		if l.n.Add(1)%7 == 0 {
			v := append([]byte(nil), it.Value...)
			v[len(v)-1] ^= 0x20
			it.Value = v
		}
		return nil
	}
	return l.Backend.Get(ctx, key, dst, it)
}

func TestVerifyCatchesLiars(t *testing.T) {
	for _, mode := range []string{"stale", "lost", "corrupt"} {
		for _, binary := range []bool{false, true} {
			t.Run(mode, func(t *testing.T) {
				addr := startMemtest(t, &liar{Backend: memtest.New(nil), mode: mode})
				res, err := Run(context.Background(), Config{
					Addr: addr, Binary: binary, Conns: 4, Pipeline: 2, GetRatio: 0.5, ValueSize: 64,
					Keys: 20, MultiGet: 1, Ops: 2000, Preload: true, Verify: true, Seed: 3,
				})
				if err != nil {
					t.Fatal(err)
				}
				if res.Wrong == 0 || res.Errors != 0 {
					t.Fatalf("wrong %d errors %d: the liar went unnoticed", res.Wrong, res.Errors)
				}
				found := false
				for _, s := range res.WrongSamples {
					found = found || strings.HasPrefix(s, mode+" ")
				}
				if !found {
					t.Fatalf("samples %q, want a %s one", res.WrongSamples, mode)
				}
			})
		}
	}
}

// TestReconnect: a server that drops the connection now and then; the
// unanswered requests count as errors and the load goes on.
func TestReconnect(t *testing.T) {
	b := memtest.New(nil)
	s := &memcache.Server{Backend: b}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if accepted.Add(1)%2 == 0 {
				// Every second connection dies after its first read.
				go func() {
					buf := make([]byte, 64)
					nc.Read(buf)
					nc.Close()
				}()
				continue
			}
			go s.ServeConn(nc)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done; s.Close() })

	res, err := Run(context.Background(), Config{
		Addr: ln.Addr().String(), Conns: 2, Pipeline: 2, GetRatio: 0.5, ValueSize: 40,
		Keys: 10, MultiGet: 1, Ops: 400, Verify: true, Seed: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 400 || res.Errors == 0 || res.Reconnects == 0 || res.Wrong != 0 {
		t.Fatalf("ops %d errors %d reconnects %d wrong %d %v", res.Ops, res.Errors, res.Reconnects, res.Wrong, res.WrongSamples)
	}
}

func TestDuration(t *testing.T) {
	addr := startMemtest(t, memtest.New(nil))
	var ticks atomic.Int64
	res, err := Run(context.Background(), Config{
		Addr: addr, Conns: 2, Pipeline: 1, GetRatio: 0.9, ValueSize: 10, Keys: 10, MultiGet: 1,
		Duration: 1200 * time.Millisecond,
		Progress: func(el time.Duration, ops, errs uint64) { ticks.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Elapsed < 1200*time.Millisecond || res.Ops == 0 || ticks.Load() < 1 {
		t.Fatalf("elapsed %v ops %d progress calls %d", res.Elapsed, res.Ops, ticks.Load())
	}
}

func TestCancel(t *testing.T) {
	addr := startMemtest(t, memtest.New(nil))
	ctx, cancel := context.WithCancel(context.Background())
	var once atomic.Bool
	res, err := Run(ctx, Config{
		Addr: addr, Conns: 2, Pipeline: 1, GetRatio: 0.9, ValueSize: 10, Keys: 10, MultiGet: 1,
		Duration: time.Hour,
		Progress: func(time.Duration, uint64, uint64) {
			if once.CompareAndSwap(false, true) {
				cancel()
			}
		},
	})
	if err != nil || res.Ops == 0 || res.Elapsed > time.Minute {
		t.Fatalf("res %+v err %v", res, err)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{Addr: "127.0.0.1:1", Conns: 1, Pipeline: 1, GetRatio: 0.5, ValueSize: 64, Keys: 1, MultiGet: 1, Ops: 1}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"conns", func(c *Config) { c.Conns = 0 }, "connections must be >= 1"},
		{"pipeline", func(c *Config) { c.Pipeline = 0 }, "pipeline depth must be >= 1"},
		{"ratio", func(c *Config) { c.GetRatio = 1.5 }, "get ratio must be within 0..1"},
		{"size", func(c *Config) { c.ValueSize = 0 }, "value size must be within 1..1048576"},
		{"keys", func(c *Config) { c.Keys = 0 }, "keys must be within 1..1073741824"},
		{"zipf", func(c *Config) { c.Zipf = 1 }, "zipf exponent must be > 1"},
		{"mget", func(c *Config) { c.MultiGet = 0 }, "multi-get size must be within 1..1000"},
		{"no end", func(c *Config) { c.Ops = 0 }, "need a duration or an op count"},
		{"prefix", func(c *Config) { c.KeyPrefix = "a b" }, "key prefix has a space or control byte"},
		{"verify size", func(c *Config) { c.Verify = true; c.ValueSize = 20 }, "verify needs values of at least 34 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			_, err := Run(context.Background(), c)
			if !errors.Is(err, ErrConfig) || err.Error() != "benchload: bad config: "+tt.want {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	_, err := Run(context.Background(), ok) // nothing listens on port 1
	if !errors.Is(err, ErrDial) {
		t.Fatalf("err %v, want ErrDial", err)
	}
}

// TestServerGone: the server closes the connection and stops listening; a
// run with an op count still ends, every request failed.
func TestServerGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		ln.Close()
		if err == nil {
			nc.Close()
		}
	}()
	res, err := Run(context.Background(), Config{
		Addr: ln.Addr().String(), Conns: 1, Pipeline: 50, GetRatio: 0.5, ValueSize: 40,
		Keys: 10, MultiGet: 1, Ops: 100, Verify: true,
	})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 100 || res.Errors != 100 || res.Latency.Count() != 0 || res.Wrong != 0 {
		t.Fatalf("ops %d errors %d answered %d wrong %d", res.Ops, res.Errors, res.Latency.Count(), res.Wrong)
	}
}

func TestZipfOneKey(t *testing.T) {
	addr := startMemtest(t, memtest.New(nil))
	res, err := Run(context.Background(), Config{
		Addr: addr, Conns: 2, Pipeline: 2, GetRatio: 0.5, ValueSize: 40, Keys: 1, Zipf: 1.5,
		MultiGet: 2, Ops: 200, Verify: true, Preload: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 200 || res.Errors != 0 || res.Wrong != 0 || res.Misses != 0 {
		t.Fatalf("ops %d errors %d wrong %d misses %d", res.Ops, res.Errors, res.Wrong, res.Misses)
	}
}
