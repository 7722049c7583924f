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

// rawValue returns the value bytes and clock a server stores for key.
func rawValue(t *testing.T, c *rpc.Client, key string) (string, uint64) {
	t.Helper()
	v, ok := getRaw(t, c, key)
	if !ok {
		t.Fatalf("%s holds no record of %s", c.Addr(), key)
	}
	return string(v.Data), v.Clock
}

// Ensure that an acknowledged write wins on every owner over an
// unacknowledged one that an earlier coordinator left on a replica with a
// clock that ran ahead: the replica says it keeps a newer version, and the
// coordinator re-stamps its write above it instead of acknowledging a value
// that owner does not hold.
func TestRestampOverNewerLeftover(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	m := dial(t, c.Gateway())
	const key = "restamp-key"
	if r := m.set(key, "first"); r != "STORED\r\n" {
		t.Fatalf("set: %q", r)
	}
	hs := whs(t, c.Manager(0))
	o := hs.Lookup([]byte(key))
	co, _ := o.Coordinator()
	var replica string
	for i := 0; i < o.Len(); i++ {
		if a := o.At(i).Addr; a != co.Addr {
			replica = a.String()
			break
		}
	}
	rc := rpc.Dial(replica, rpc.Options{})
	defer rc.Close()
	// The leftover: stamped 30 s ahead, as by a clock that ran ahead.
	ahead := uint64(time.Now().Add(30*time.Second).Unix()) << 32
	k := []byte(key)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := rc.Call(ctx, wire.SrvReplicateSet, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 5)
		b = msgpack.AppendUint(b, 0) // sender clock: none, so the replica's own clock stays behind
		b = msgpack.AppendUint(b, 0)
		b = msgpack.AppendRaw(b, wire.AppendDBKey(nil, ring.Hash(k), k))
		v := wire.Value{Clock: ahead, Data: []byte("leftover")}
		b = msgpack.AppendRaw(b, wire.AppendDBValue(nil, &v))
		return msgpack.AppendUint(b, hs.Clock())
	})
	if err != nil {
		t.Fatalf("planting the leftover: %v", err)
	}
	res.Release()
	if v, ct := rawValue(t, rc, key); v != "leftover" || ct != ahead {
		t.Fatalf("leftover not planted: %q at %x", v, ct)
	}
	// The acknowledged write must be what every owner holds.
	if r := m.set(key, "acked"); r != "STORED\r\n" {
		t.Fatalf("set: %q", r)
	}
	for i := 0; i < o.Len(); i++ {
		a := o.At(i).Addr.String()
		cl := rpc.Dial(a, rpc.Options{})
		v, ct := rawValue(t, cl, key)
		cl.Close()
		if v != "acked" || ct <= ahead {
			t.Fatalf("owner %s holds %q at clock %x (leftover at %x)", a, v, ct, ahead)
		}
	}
	if v, ok := m.get(key); !ok || v != "acked" {
		t.Fatalf("get: %q %v", v, ok)
	}
}
