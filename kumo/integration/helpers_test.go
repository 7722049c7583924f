package integration

import (
	"context"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// serverGet asks one server directly for its stored record of a key
// (GetRaw: no ownership check), bypassing the gateway, so tests can check
// where copies live. It returns the value and whether the server holds a
// live (not deleted) copy.
func serverGet(t testing.TB, addr, key string) (string, bool) {
	t.Helper()
	c := rpc.Dial(addr, rpc.Options{CallTimeout: 5 * time.Second})
	defer c.Close()
	k := []byte(key)
	dbkey := wire.AppendDBKey(nil, ring.Hash(k), k)
	var res rpc.Result
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err = c.Call(ctx, wire.SrvGetRaw, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 1)
			return msgpack.AppendRaw(b, dbkey)
		})
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // reconnect backoff of a fresh client; polled with a deadline
	}
	if err != nil {
		t.Fatalf("Get %q from %s: %v", key, addr, err)
	}
	defer res.Release()
	if msgpack.IsNil(res.Bytes()) {
		return "", false
	}
	raw, _, err := msgpack.ReadRaw(res.Bytes())
	if err != nil {
		t.Fatalf("Get %q from %s: %v", key, addr, err)
	}
	v, err := wire.ParseDBValue(raw)
	if err != nil {
		t.Fatalf("Get %q from %s: %v", key, addr, err)
	}
	if v.Tombstone {
		return "", false
	}
	return string(v.Data), true
}

// eventually polls cond every 20 ms until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
