package server

import (
	"path/filepath"
	"testing"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/store"
)

// Ensure that the coordinator keeps an item's CAS unique across a touch,
// as memcached does, and compares every CAS (cas, the binary protocol's
// and the meta commands' C, incr with a CAS, md, a lease win) against it,
// not against the touched record's clock.
func TestDecideTouchKeepsCAS(t *testing.T) {
	plain := store.Record{Value: []byte("7"), Clock: 77, Flags: 3, Exptime: 500}
	touched := store.Record{Value: []byte("7"), Clock: 90, Cas: 77, Flags: 3, Exptime: 500}
	tests := []struct {
		name   string
		method uint32
		params []byte
		old    store.Record
		status int
		cas    uint64 // the new record's own CAS unique (0: its clock)
	}{
		{"touch a plain item", wire.SrvTouch, touchParams(40), plain, wire.StatusOK, 77},
		{"touch a touched item", wire.SrvTouch, touchParams(40), touched, wire.StatusOK, 77},
		{"cas with the kept CAS", wire.SrvStore, storeParams(wire.OpCAS, wire.Value{Data: []byte("n")}, 77), touched, wire.StatusOK, 0},
		{"cas with the touched clock", wire.SrvStore, storeParams(wire.OpCAS, wire.Value{Data: []byte("n")}, 90), touched, wire.StatusExists, 0},
		{"set with C", wire.SrvStore, storeParams(wire.OpSet, wire.Value{Data: []byte("n")}, 77), touched, wire.StatusOK, 0},
		{"set with C of the clock", wire.SrvStore, storeParams(wire.OpSet, wire.Value{Data: []byte("n")}, 90), touched, wire.StatusExists, 0},
		{"ms I with an older CAS", wire.SrvStore, storeParams(wire.OpCAS, wire.Value{Data: []byte("n"), Stale: true}, 76), touched, wire.StatusOK, 0},
		{"ms I with a CAS newer than the kept one", wire.SrvStore, storeParams(wire.OpCAS, wire.Value{Data: []byte("n"), Stale: true}, 80), touched, wire.StatusExists, 0},
		{"incr with the kept CAS", wire.SrvArith, arithParams(1, false, 0, 0, true, 77, false, 0), touched, wire.StatusOK, 0},
		{"incr with the touched clock", wire.SrvArith, arithParams(1, false, 0, 0, true, 90, false, 0), touched, wire.StatusExists, 0},
		{"win with the kept CAS", wire.SrvLease, leaseParams(wire.LeaseWin, 77, false, 0), touched, wire.StatusOK, 77},
		{"win keeps a plain item's CAS", wire.SrvLease, leaseParams(wire.LeaseWin, 77, false, 0), plain, wire.StatusOK, 77},
		{"win with the touched clock", wire.SrvLease, leaseParams(wire.LeaseWin, 90, false, 0), touched, wire.StatusExists, 0},
		{"md I with the kept CAS", wire.SrvLease, leaseParams(wire.LeaseInvalidate, 77, false, 0), touched, wire.StatusOK, 0},
		{"delete with the kept CAS", wire.SrvRemove, removeParams(77), touched, wire.StatusOK, 0},
		{"delete with the touched clock", wire.SrvRemove, removeParams(90), touched, wire.StatusExists, 0},
	}
	var s Server
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var op writeOp
			if err := op.parse(&rpc.Request{Method: tt.method, Params: tt.params}); err != nil {
				t.Fatalf("parse: %v", err)
			}
			old := tt.old
			rec, status, _, err := s.decide(&op, &old, true)
			if err != nil || status != tt.status {
				t.Fatalf("decide = status %d err %v; want %d", status, err, tt.status)
			}
			if status == wire.StatusOK && rec.Cas != tt.cas {
				t.Fatalf("new record's CAS unique %d, want %d", rec.Cas, tt.cas)
			}
		})
	}
}

func removeParams(cas uint64) []byte {
	b := msgpack.AppendArrayHeader(nil, 2)
	b = msgpack.AppendRaw(b, []byte("01234567key"))
	return msgpack.AppendUint(b, cas)
}

// Ensure that through a server a touch and a gat keep the CAS unique that
// gets read, that the store keeps it, and that the next write gives the
// item a new one again.
func TestTouchKeepsCAS(t *testing.T) {
	_, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	storeKey(t, cl, wire.OpSet, "k", "v")
	v0, _ := getKey(t, cl, wire.SrvGet, "k")
	touch := func(want bool) (uint64, wire.Value) {
		res := call(t, cl, wire.SrvTouch, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 3)
			b = msgpack.AppendRaw(b, dbkey("k"))
			b = msgpack.AppendUint(b, 4000000000)
			return msgpack.AppendBool(b, want)
		})
		_, p, err := msgpack.ReadArrayHeader(res)
		if err != nil {
			t.Fatal(err)
		}
		st, p, err := msgpack.ReadUint(p)
		if err != nil {
			t.Fatal(err)
		}
		var v wire.Value
		if want {
			raw, _, err := msgpack.ReadRaw(p)
			if err == nil {
				v, err = wire.ParseDBValue(raw)
			}
			if err != nil {
				t.Fatalf("gat reply % x: %v", res, err)
			}
		}
		return st, v
	}
	if st, _ := touch(false); st != wire.StatusOK {
		t.Fatalf("touch status %d", st)
	}
	v1, _ := getKey(t, cl, wire.SrvGet, "k")
	if v1.CAS() != v0.Clock || v1.Clock <= v0.Clock || v1.Exptime != 4000000000 {
		t.Fatalf("after touch: clock %x CAS %x exptime %d; want a newer clock, CAS %x", v1.Clock, v1.CAS(), v1.Exptime, v0.Clock)
	}
	st, g := touch(true)
	if st != wire.StatusOK || g.CAS() != v0.Clock || string(g.Data) != "v" {
		t.Fatalf("gat: status %d CAS %x value %q; want CAS %x", st, g.CAS(), g.Data, v0.Clock)
	}
	if raw, _ := getKey(t, cl, wire.SrvGetRaw, "k"); raw.Cas != v0.Clock {
		t.Fatalf("stored CAS %x, want %x", raw.Cas, v0.Clock)
	}
	res := call(t, cl, wire.SrvStore, storeWithID(wire.OpCAS, "k", "w", v0.Clock, 0))
	if _, p, _ := msgpack.ReadArrayHeader(res); len(p) == 0 || p[0] != byte(wire.StatusOK) {
		t.Fatalf("cas with the CAS read before the touches: % x", res)
	}
	v2, _ := getKey(t, cl, wire.SrvGet, "k")
	if string(v2.Data) != "w" || v2.Cas != 0 || v2.CAS() == v0.Clock {
		t.Fatalf("after cas: %q, CAS %x (own %x); want a new CAS unique", v2.Data, v2.CAS(), v2.Cas)
	}
}
