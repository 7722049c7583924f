package server

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// directArgs are the params of a SrvSetDirect of key stamped ct under the
// whs clock wc.
func directArgs(key, val string, ct, wc uint64) func([]byte) []byte {
	return func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 4)
		b = msgpack.AppendUint(b, ct)
		b = msgpack.AppendRaw(b, dbkey(key))
		v := wire.Value{Clock: ct, Flags: 7, Data: []byte(val)}
		b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
		b = wire.AppendDBValue(b, &v)
		return msgpack.AppendUint(b, wc)
	}
}

// setDirect sends a SrvSetDirect and returns its answer.
func setDirect(t *testing.T, cl *rpc.Client, key, val string, ct, wc uint64) (stored bool, clk uint64) {
	t.Helper()
	res := call(t, cl, wire.SrvSetDirect, directArgs(key, val, ct, wc))
	n, p, err := msgpack.ReadArrayHeader(res)
	if err != nil || n != 2 {
		t.Fatalf("reply %x: %v", res, err)
	}
	if stored, p, err = msgpack.ReadBool(p); err != nil {
		t.Fatalf("reply %x: %v", res, err)
	}
	if clk, _, err = msgpack.ReadUint(p); err != nil {
		t.Fatalf("reply %x: %v", res, err)
	}
	return stored, clk
}

// Ensure that an owner stores a direct set only when a set through the
// coordinator would end the same on every owner, and otherwise keeps what
// it had and answers false with its clock.
func TestSetDirect(t *testing.T) {
	s, cl := startWithClock(t, filepath.Join(t.TempDir(), "db.kch"),
		clock.New(clock.Options{MaxAhead: clock.DefaultMaxAhead}))
	wc := s.whs.Load().Clock()
	other, _ := ring.ParseAddr("127.0.0.2:19800", 19800)

	// A fresh key: stored with the gateway's stamp, flags and value.
	ct := s.clk.Now() + 100
	if ok, c := setDirect(t, cl, "k", "v1", ct, wc); !ok || c < ct {
		t.Fatalf("fresh key: stored %v, clock %x (stamp %x)", ok, c, ct)
	}
	if rec := rawRecord(t, s, "k"); string(rec.Value) != "v1" || rec.Clock != ct || rec.Flags != 7 {
		t.Fatalf("stored %q clock %x flags %d", rec.Value, rec.Clock, rec.Flags)
	}
	if s.clk.Current() < ct {
		t.Fatalf("clock %x not merged with the stamp %x", s.clk.Current(), ct)
	}

	refused := []struct {
		name  string
		setup func() (ct, wc uint64)
	}{
		{"equal stamp", func() (uint64, uint64) { return ct, wc }},
		{"older stamp", func() (uint64, uint64) { return ct - 1, wc }},
		{"older hash space", func() (uint64, uint64) { return s.clk.Now(), wc - 1 }},
		{"newer hash space", func() (uint64, uint64) { return s.clk.Now(), wc + 1 }},
		{"too far ahead", func() (uint64, uint64) {
			return clock.Make(uint32(time.Now().Add(time.Hour).Unix()), 0), wc
		}},
		{"rebalance", func() (uint64, uint64) {
			s.rhs.Store(ring.New([]ring.Node{{Addr: testSelf, Active: true}}, wc-1))
			return s.clk.Now(), wc
		}},
		{"not an owner", func() (uint64, uint64) {
			hs := ring.New([]ring.Node{{Addr: other, Active: true}}, wc+2)
			s.whs.Store(hs)
			s.rhs.Store(hs)
			return s.clk.Now(), hs.Clock()
		}},
		{"fault", func() (uint64, uint64) {
			hs := ring.New([]ring.Node{{Addr: testSelf, Active: false}}, wc+3)
			s.whs.Store(hs)
			s.rhs.Store(hs)
			return s.clk.Now(), hs.Clock()
		}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			c, w := tc.setup()
			ok, got := setDirect(t, cl, "k", "v2", c, w)
			if ok {
				t.Fatal("stored")
			}
			if got < ct {
				t.Fatalf("answered clock %x, below the version kept (%x)", got, ct)
			}
			if rec := rawRecord(t, s, "k"); string(rec.Value) != "v1" || rec.Clock != ct {
				t.Fatalf("kept %q at %x, want v1 at %x", rec.Value, rec.Clock, ct)
			}
		})
	}

	// Back to owning every key alone: a stamp before the flush point is
	// refused, one after it stored.
	hs := ring.New([]ring.Node{{Addr: testSelf, Active: true}}, s.clk.Now())
	s.whs.Store(hs)
	s.rhs.Store(hs)
	lag := s.clk.Now()
	flushAt(t, cl, 0)
	if ok, _ := setDirect(t, cl, "f", "old", lag, hs.Clock()); ok {
		t.Fatal("a stamp before the flush point was stored")
	}
	if ok, _ := setDirect(t, cl, "f", "new", s.clk.Now()+1, hs.Clock()); !ok {
		t.Fatal("a stamp after the flush point was refused")
	}
	if v, ok := getKey(t, cl, wire.SrvGet, "f"); !ok || string(v.Data) != "new" {
		t.Fatalf("get f = %q, %v", v.Data, ok)
	}
}

// Ensure that malformed direct sets get an error, not a store.
func TestSetDirectBadParams(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db.kch"))
	wc := s.whs.Load().Clock()
	ct := s.clk.Now()
	for name, args := range map[string]func([]byte) []byte{
		"short": func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 3)
			b = msgpack.AppendUint(b, ct)
			b = msgpack.AppendRaw(b, dbkey("k"))
			return msgpack.AppendRaw(b, []byte("12345678"))
		},
		"tombstone": func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 4)
			b = msgpack.AppendUint(b, ct)
			b = msgpack.AppendRaw(b, dbkey("k"))
			v := wire.Value{Clock: ct, Tombstone: true}
			b = msgpack.AppendRaw(b, wire.AppendDBValue(nil, &v))
			return msgpack.AppendUint(b, wc)
		},
		"stamp differs from clock": func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 4)
			b = msgpack.AppendUint(b, ct)
			b = msgpack.AppendRaw(b, dbkey("k"))
			v := wire.Value{Clock: ct + 1, Data: []byte("x")}
			b = msgpack.AppendRaw(b, wire.AppendDBValue(nil, &v))
			return msgpack.AppendUint(b, wc)
		},
		"short key": func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 4)
			b = msgpack.AppendUint(b, ct)
			b = msgpack.AppendRaw(b, []byte("k"))
			v := wire.Value{Clock: ct, Data: []byte("x")}
			b = msgpack.AppendRaw(b, wire.AppendDBValue(nil, &v))
			return msgpack.AppendUint(b, wc)
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := cl.Call(ctx, wire.SrvSetDirect, args)
		cancel()
		if err == nil {
			res.Release()
			t.Errorf("%s: answered without an error", name)
		}
	}
	if _, ok := getKey(t, cl, wire.SrvGetRaw, "k"); ok {
		t.Fatal("a malformed direct set was stored")
	}
}

// Ensure that a replica told to store a version at the clock of a
// different version it keeps (a direct set stamped the same by a gateway)
// answers that clock as newer, so that the coordinator re-stamps above it,
// while the same version sent again is simply acknowledged.
func TestReplicateEqualClockOtherVersion(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db.kch"))
	ct := s.clk.Now()
	if ok, _ := setDirect(t, cl, "k", "direct", ct, s.whs.Load().Clock()); !ok {
		t.Fatal("direct set refused")
	}
	res := replicateSet(t, s, cl, "k", "coordinated", ct)
	if newer, _, err := msgpack.ReadUint(res); err != nil || newer != ct {
		t.Fatalf("replicate of another version at the same clock answered %x; want newer %#x", res, ct)
	}
	// The same version again (flags 7 as directArgs sends): acknowledged.
	res = call(t, cl, wire.SrvReplicateSet, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 5)
		b = msgpack.AppendUint(b, ct)
		b = msgpack.AppendUint(b, 0)
		b = msgpack.AppendRaw(b, dbkey("k"))
		v := wire.Value{Clock: ct, Flags: 7, Data: []byte("direct")}
		b = msgpack.AppendRaw(b, wire.AppendDBValue(nil, &v))
		return msgpack.AppendUint(b, s.whs.Load().Clock())
	})
	if ok, _, err := msgpack.ReadBool(res); err != nil || ok {
		t.Fatalf("replicate of the same version answered %x; want false (already stored)", res)
	}
	if rec := rawRecord(t, s, "k"); string(rec.Value) != "direct" || rec.Clock != ct {
		t.Fatalf("kept %q at %x", rec.Value, rec.Clock)
	}
}

// Ensure that SetDirectLocal stores as SrvSetDirect does, answers its
// refusals the same way, and does not take a set once the server closed.
func TestSetDirectLocal(t *testing.T) {
	s, _ := startAlone(t, filepath.Join(t.TempDir(), "db.kch"))
	wc := s.whs.Load().Clock()
	ct := s.clk.Now() + 10
	v := wire.Value{Clock: ct, Flags: 3, Data: []byte("local")}
	if taken, stored, clk := s.SetDirectLocal(dbkey("k"), &v, wc); !taken || !stored || clk < ct {
		t.Fatalf("fresh key: taken %v stored %v clock %x", taken, stored, clk)
	}
	if rec := rawRecord(t, s, "k"); string(rec.Value) != "local" || rec.Clock != ct || rec.Flags != 3 {
		t.Fatalf("stored %q at %x flags %d", rec.Value, rec.Clock, rec.Flags)
	}
	v.Data = []byte("again")
	if taken, stored, _ := s.SetDirectLocal(dbkey("k"), &v, wc); !taken || stored {
		t.Fatalf("equal stamp: taken %v stored %v", taken, stored)
	}
	v.Clock = s.clk.Now()
	if taken, stored, _ := s.SetDirectLocal(dbkey("k"), &v, wc+1); !taken || stored {
		t.Fatalf("other hash space: taken %v stored %v", taken, stored)
	}
	s.Close()
	v.Clock = s.clk.Now()
	if taken, _, _ := s.SetDirectLocal(dbkey("k"), &v, wc); taken {
		t.Fatal("taken by a closed server")
	}
}

// Ensure that a coordinator merges the gateway clock a SrvStore carries in
// its value's clock field, so that its stamp beats every direct set that
// gateway sent: one still on its way to an owner loses to the writes after
// it (here a set and a delete through the coordinator).
func TestStoreMergesGatewayClock(t *testing.T) {
	s, cl := startWithClock(t, filepath.Join(t.TempDir(), "db.kch"),
		clock.New(clock.Options{MaxAhead: clock.DefaultMaxAhead}))
	gw := clock.Make(clock.Seconds(s.clk.Now())+30, 5) // a gateway clock 30 s ahead
	res := call(t, cl, wire.SrvStore, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 4)
		b = msgpack.AppendUint(b, wire.OpSet)
		b = msgpack.AppendRaw(b, dbkey("k"))
		v := wire.Value{Clock: gw, Data: []byte("coordinated")}
		b = msgpack.AppendRaw(b, wire.AppendDBValue(nil, &v))
		return msgpack.AppendUint(b, 0)
	})
	if _, p, err := msgpack.ReadArrayHeader(res); err == nil {
		if st, p, err := msgpack.ReadUint(p); err != nil || st != wire.StatusOK {
			t.Fatalf("store: %x", res)
		} else if ct, _, _ := msgpack.ReadUint(p); ct <= gw {
			t.Fatalf("stamped %x, not above the gateway's clock %x", ct, gw)
		}
	}
	if rec := rawRecord(t, s, "k"); rec.Clock <= gw {
		t.Fatalf("stored at %x, not above the gateway's clock %x", rec.Clock, gw)
	}
	// The late direct set, stamped by that gateway before: refused.
	if ok, _ := setDirect(t, cl, "k", "late", gw-1, s.whs.Load().Clock()); ok {
		t.Fatal("a direct set stamped before the coordinator's write was stored")
	}
	if rec := rawRecord(t, s, "k"); string(rec.Value) != "coordinated" {
		t.Fatalf("holds %q", rec.Value)
	}
}
