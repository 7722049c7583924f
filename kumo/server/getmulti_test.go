package server

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
	"kumofs/store"
)

// getMulti runs SrvGetMulti for keys and returns the raw entries.
func getMulti(t *testing.T, cl *rpc.Client, keys ...string) [][]byte {
	t.Helper()
	res := call(t, cl, wire.SrvGetMulti, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		b = msgpack.AppendArrayHeader(b, uint32(len(keys)))
		for _, k := range keys {
			b = msgpack.AppendRaw(b, dbkey(k))
		}
		return b
	})
	n, p, err := msgpack.ReadArrayHeader(res)
	if err != nil || int(n) != len(keys) {
		t.Fatalf("reply %x: %d entries, %v", res, n, err)
	}
	var out [][]byte
	for i := uint32(0); i < n; i++ {
		rest, err := msgpack.Skip(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p[:len(p)-len(rest)])
		p = rest
	}
	return out
}

// Ensure that SrvGetMulti answers each key as SrvGet does, in order: the
// stored value, nil for a miss and a tombstone, and GetMultiElsewhere for
// every key once the server no longer serves its reads.
func TestGetMulti(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	storeKey(t, cl, wire.OpSet, "k1", "one")
	storeKey(t, cl, wire.OpSet, "k2", "two")
	ct := s.clk.Now()
	if _, err := s.db.Update(&store.Record{Key: dbkey("gone"), Clock: ct, Tombstone: true}, newer(ct)); err != nil {
		t.Fatal(err)
	}
	got := getMulti(t, cl, "k1", "nokey", "k2", "gone", "k1")
	for i, k := range []string{"k1", "nokey", "k2", "gone", "k1"} {
		want := msgpack.AppendNil(nil)
		if v, ok := getKey(t, cl, wire.SrvGet, k); ok {
			want = msgpack.AppendRawHeader(nil, uint32(wire.DBValueLen(&v)))
			want = wire.AppendDBValue(want, &v)
		}
		if !bytes.Equal(got[i], want) {
			t.Errorf("entry %d (%s) = %x, want %x (as SrvGet)", i, k, got[i], want)
		}
	}
	if v, _, _ := msgpack.ReadRaw(got[0]); !bytes.HasSuffix(v, []byte("one")) {
		t.Errorf("k1's entry %x does not hold its value", got[0])
	}

	other, _ := ring.ParseAddr("127.0.0.1:19898", 19800)
	s.rhs.Store(ring.New([]ring.Node{{Addr: other, Active: true}}, s.clk.Now()))
	for i, e := range getMulti(t, cl, "k1", "nokey") {
		if c, _, err := msgpack.ReadUint(e); err != nil || c != wire.GetMultiElsewhere {
			t.Errorf("entry %d after the move = %x, want code %d", i, e, wire.GetMultiElsewhere)
		}
	}
}

// Ensure that malformed and oversized SrvGetMulti requests are refused
// with a protocol error and the connection keeps serving.
func TestGetMultiBadParams(t *testing.T) {
	_, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	bad := map[string]func([]byte) []byte{
		"no params":  func(b []byte) []byte { return msgpack.AppendArrayHeader(b, 0) },
		"not a list": func(b []byte) []byte { return msgpack.AppendUint(msgpack.AppendArrayHeader(b, 1), 7) },
		"short key": func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(msgpack.AppendArrayHeader(b, 1), 1)
			return msgpack.AppendRaw(b, []byte("abc"))
		},
		"too many keys": func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(msgpack.AppendArrayHeader(b, 1), wire.MaxGetMulti+1)
			for i := 0; i <= wire.MaxGetMulti; i++ {
				b = msgpack.AppendRaw(b, dbkey("k"))
			}
			return b
		},
	}
	for name, args := range bad {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := cl.Call(ctx, wire.SrvGetMulti, args)
		cancel()
		if err == nil {
			res.Release()
		}
		if re, ok := err.(*rpc.Error); !ok || re.Code != rpc.CodeProtocol {
			t.Errorf("%s: err %v, want a CodeProtocol error", name, err)
		}
	}
	if got := getMulti(t, cl, "nokey"); !msgpack.IsNil(got[0]) {
		t.Fatalf("after the bad requests: %x", got[0])
	}
}

// Ensure that a SrvGetMulti reply stops adding values once it holds
// GetMultiBudget bytes: the keys after that are answered GetMultiElsewhere.
func TestGetMultiBudget(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	big := bytes.Repeat([]byte("v"), 1<<20)
	keys := make([]string, 10)
	for i := range keys {
		keys[i] = "big" + string(rune('a'+i))
		rec := store.Record{Key: dbkey(keys[i]), Value: big, Clock: s.clk.Now()}
		if _, err := s.db.Update(&rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := getMulti(t, cl, keys...)
	for i, e := range got {
		if i < 8 {
			if v, _, err := msgpack.ReadRaw(e); err != nil || !bytes.HasSuffix(v, big) {
				t.Errorf("entry %d: %d bytes, %v; want the 1 MiB value", i, len(e), err)
			}
			continue
		}
		if c, _, err := msgpack.ReadUint(e); err != nil || c != wire.GetMultiElsewhere {
			t.Errorf("entry %d past the budget = %.20x, want code %d", i, e, wire.GetMultiElsewhere)
		}
	}
}
