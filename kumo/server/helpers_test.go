package server

// Helpers shared by the package's tests: a server that owns every key
// alone, calls to it, and reading its store directly.

import (
	"context"
	"io"
	"testing"
	"time"

	"kumofs/internal/logging"
	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
	"kumofs/store"
)

// testSelf is the address the test servers advertise; they listen on a
// free port of 127.0.0.1 and own every key alone.
var testSelf, _ = ring.ParseAddr("127.0.0.1:19899", 19800)

// startAlone starts a server on the store at path that owns every key by
// itself (no managers, no replicas), and a client for it.
func startAlone(t *testing.T, path string) (*Server, *rpc.Client) {
	t.Helper()
	return startWithClock(t, path, nil)
}

// startWithClock is startAlone with the server's clock (nil: a default one).
func startWithClock(t *testing.T, path string, clk *clock.Clock) (*Server, *rpc.Client) {
	t.Helper()
	return startWith(t, Config{StorePath: path, Clock: clk})
}

// startWith is startAlone with cfg, whose Self, Listen and Log it sets.
func startWith(t *testing.T, cfg Config) (*Server, *rpc.Client) {
	t.Helper()
	cfg.Self, cfg.Listen = testSelf, "127.0.0.1:0"
	cfg.Log = logging.New(io.Discard, logging.Info).With("server")
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := ring.New([]ring.Node{{Addr: testSelf, Active: true}}, s.clk.Now())
	s.whs.Store(hs)
	s.rhs.Store(hs)
	cl := rpc.Dial(s.Addr().String(), rpc.Options{CallTimeout: 10 * time.Second})
	t.Cleanup(func() { cl.Close(); s.Close() })
	return s, cl
}

func dbkey(key string) []byte { return wire.AppendDBKey(nil, ring.Hash([]byte(key)), []byte(key)) }

// call makes one RPC and returns a copy of its result.
func call(t *testing.T, cl *rpc.Client, method uint32, args func([]byte) []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cl.Call(ctx, method, args)
	if err != nil {
		t.Fatalf("method %d: %v", method, err)
	}
	defer res.Release()
	return append([]byte(nil), res.Bytes()...)
}

// store runs SrvStore (mode: wire.OpSet, OpAdd ...) and returns the status.
func storeKey(t *testing.T, cl *rpc.Client, mode uint64, key, val string) uint64 {
	t.Helper()
	res := call(t, cl, wire.SrvStore, storeWithID(mode, key, val, 0, 0))
	_, p, err := msgpack.ReadArrayHeader(res)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := msgpack.ReadUint(p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// getKey runs SrvGet (method SrvGet) or SrvGetRaw and returns the value, or
// ok false for nil.
func getKey(t *testing.T, cl *rpc.Client, method uint32, key string) (wire.Value, bool) {
	t.Helper()
	res := call(t, cl, method, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendRaw(b, dbkey(key))
	})
	if msgpack.IsNil(res) {
		return wire.Value{}, false
	}
	raw, _, err := msgpack.ReadRaw(res)
	if err != nil {
		t.Fatal(err)
	}
	v, err := wire.ParseDBValue(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

func flushAt(t *testing.T, cl *rpc.Client, at uint64) {
	t.Helper()
	res := call(t, cl, wire.SrvFlush, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendUint(b, at)
	})
	if ok, _, err := msgpack.ReadBool(res); err != nil || !ok {
		t.Fatalf("flush reply %x", res)
	}
}

// rawRecord reads key straight from the store.
func rawRecord(t *testing.T, s *Server, key string) store.Record {
	t.Helper()
	rec, _, err := s.db.Get(dbkey(key), nil)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return rec
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
