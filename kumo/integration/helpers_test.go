package integration

import (
	"context"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// getRaw asks a server for its stored record of key with GetRaw (no
// ownership check, tombstones included), retrying while the client
// (re)connects. ok is false when the server holds no record at all.
func getRaw(t testing.TB, c *rpc.Client, key string) (v wire.Value, ok bool) {
	t.Helper()
	k := []byte(key)
	dbkey := wire.AppendDBKey(nil, ring.Hash(k), k)
	var res rpc.Result
	var err error
	eventually(t, 10*time.Second, "GetRaw "+key+" from "+c.Addr(), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err = c.Call(ctx, wire.SrvGetRaw, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 1)
			return msgpack.AppendRaw(b, dbkey)
		})
		return err == nil
	})
	defer res.Release()
	if msgpack.IsNil(res.Bytes()) {
		return v, false
	}
	raw, _, err := msgpack.ReadRaw(res.Bytes())
	if err == nil {
		v, err = wire.ParseDBValue(raw)
	}
	if err != nil {
		t.Fatalf("GetRaw %q from %s: %v (% x)", key, c.Addr(), err, res.Bytes())
	}
	v.Data = append([]byte(nil), v.Data...) // res is released on return
	return v, true
}

// serverGet asks one server directly for its stored record of a key,
// bypassing the gateway, so tests can check where copies live. It returns
// the value and whether the server holds a live (not deleted) copy.
func serverGet(t testing.TB, addr, key string) (string, bool) {
	t.Helper()
	c := rpc.Dial(addr, rpc.Options{CallTimeout: 5 * time.Second})
	defer c.Close()
	v, ok := getRaw(t, c, key)
	if !ok || v.Tombstone {
		return "", false
	}
	return string(v.Data), true
}

// eventually polls cond every 20 ms until it holds or the timeout passes;
// on a timeout it logs what each seen function reports before failing.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool, seen ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			for _, f := range seen {
				t.Logf("last seen: %s", f())
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eachGateway runs f in parallel subtests on a cluster started with opts
// behind a kumo-gateway process and on one whose first server embeds the
// gateway (kumo-server -t).
func eachGateway(t *testing.T, opts localcluster.Options, f func(t *testing.T, c *localcluster.Cluster)) {
	t.Helper()
	for _, emb := range []bool{false, true} {
		name := "kumo-gateway"
		if emb {
			name = "embedded"
		}
		o := opts
		o.EmbeddedGateway = emb
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, localcluster.StartT(t, o))
		})
	}
}
