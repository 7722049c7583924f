package server

import (
	"path/filepath"
	"testing"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/store"
)

func leaseParams(op, cas uint64, touch bool, exp uint32) []byte {
	b := msgpack.AppendArrayHeader(nil, 5)
	b = msgpack.AppendRaw(b, []byte("01234567key"))
	b = msgpack.AppendUint(b, op)
	b = msgpack.AppendUint(b, cas)
	b = msgpack.AppendBool(b, touch)
	return msgpack.AppendUint(b, uint64(exp))
}

func storeParams(mode uint64, v wire.Value, cas uint64) []byte {
	b := msgpack.AppendArrayHeader(nil, 4)
	b = msgpack.AppendUint(b, mode)
	b = msgpack.AppendRaw(b, []byte("01234567key"))
	b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
	b = wire.AppendDBValue(b, &v)
	return msgpack.AppendUint(b, cas)
}

// Ensure that the coordinator decides the meta commands' leases as
// memcached does: a win only for the current version with no token out,
// md I marks stale and takes the token back, ms I stores a value computed
// from an older version as stale, keeping exptime and token, mg N's add
// creates the item with its token out, a touch and an incr keep the state
// (an incr only while the number fits in the old value's bytes, which
// memcached rewrites in place) and any other write clears it.
func TestDecideLease(t *testing.T) {
	old := store.Record{Value: []byte("v"), Clock: 77, Flags: 3, Exptime: 500}
	stale := old
	stale.Stale, stale.TokenSent = true, true
	staleNum := store.Record{Value: []byte("41"), Clock: 77, Exptime: 500, Stale: true}
	tests := []struct {
		name         string
		method       uint32
		params       []byte
		old          *store.Record
		status       int
		value        string
		exptime      uint32
		stale, token bool
	}{
		{"win", wire.SrvLease, leaseParams(wire.LeaseWin, 77, false, 0), &old, wire.StatusOK, "v", 500, false, true},
		{"win on a changed item", wire.SrvLease, leaseParams(wire.LeaseWin, 76, false, 0), &old, wire.StatusExists, "", 0, false, false},
		{"win with the token out", wire.SrvLease, leaseParams(wire.LeaseWin, 77, false, 0), &stale, wire.StatusExists, "", 0, false, false},
		{"win on a missing item", wire.SrvLease, leaseParams(wire.LeaseWin, 77, false, 0), nil, wire.StatusNotFound, "", 0, false, false},
		{"invalidate", wire.SrvLease, leaseParams(wire.LeaseInvalidate, 0, false, 0), &old, wire.StatusOK, "v", 500, true, false},
		{"invalidate takes the token back, sets exptime", wire.SrvLease, leaseParams(wire.LeaseInvalidate, 77, true, 30), &stale, wire.StatusOK, "v", 30, true, false},
		{"invalidate, cas differs", wire.SrvLease, leaseParams(wire.LeaseInvalidate, 5, false, 0), &old, wire.StatusExists, "", 0, false, false},
		{"invalidate a missing item", wire.SrvLease, leaseParams(wire.LeaseInvalidate, 0, false, 0), nil, wire.StatusNotFound, "", 0, false, false},
		{"ms I, cas matches: a plain store", wire.SrvStore, storeParams(wire.OpCAS, wire.Value{Data: []byte("n"), Exptime: 90, Stale: true}, 77), &stale, wire.StatusOK, "n", 90, false, false},
		{"ms I, older cas: stored stale", wire.SrvStore, storeParams(wire.OpCAS, wire.Value{Data: []byte("n"), Exptime: 90, Stale: true}, 1), &stale, wire.StatusOK, "n", 500, true, true},
		{"ms I, newer cas", wire.SrvStore, storeParams(wire.OpCAS, wire.Value{Data: []byte("n"), Stale: true}, 78), &old, wire.StatusExists, "", 0, false, false},
		{"cas without I, older cas", wire.SrvStore, storeParams(wire.OpCAS, wire.Value{Data: []byte("n")}, 1), &old, wire.StatusExists, "", 0, false, false},
		{"add with the token", wire.SrvStore, storeParams(wire.OpAdd, wire.Value{Exptime: 30, TokenSent: true}, 0), nil, wire.StatusOK, "", 30, false, true},
		{"set clears the state", wire.SrvStore, storeParams(wire.OpSet, wire.Value{Data: []byte("n"), Stale: true, TokenSent: true}, 0), &stale, wire.StatusOK, "n", 0, false, false},
		{"append clears the state", wire.SrvStore, storeParams(wire.OpAppend, wire.Value{Data: []byte("n")}, 0), &stale, wire.StatusOK, "vn", 500, false, false},
		{"touch keeps the state", wire.SrvTouch, touchParams(40), &stale, wire.StatusOK, "v", 40, true, true},
		{"incr keeps the state", wire.SrvArith, arithParams(1, false, 0, 0, false, 0, false, 0), &staleNum, wire.StatusOK, "42", 500, true, false},
		{"an incr that outgrows the value clears the state", wire.SrvArith, arithParams(60, false, 0, 0, false, 0, false, 0), &staleNum, wire.StatusOK, "101", 500, false, false},
	}
	var s Server
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var op writeOp
			if err := op.parse(&rpc.Request{Method: tt.method, Params: tt.params}); err != nil {
				t.Fatalf("parse: %v", err)
			}
			var oldp *store.Record
			if tt.old != nil {
				o := *tt.old
				oldp = &o
			}
			rec, status, _, err := s.decide(&op, oldp, oldp != nil)
			if err != nil || status != tt.status {
				t.Fatalf("decide = status %d err %v; want %d", status, err, tt.status)
			}
			if status != wire.StatusOK {
				return
			}
			if string(rec.Value) != tt.value || rec.Exptime != tt.exptime || rec.Stale != tt.stale || rec.TokenSent != tt.token {
				t.Errorf("record %q exptime %d stale %v token %v; want %q %d %v %v",
					rec.Value, rec.Exptime, rec.Stale, rec.TokenSent, tt.value, tt.exptime, tt.stale, tt.token)
			}
		})
	}
}

func touchParams(exp uint32) []byte {
	b := msgpack.AppendArrayHeader(nil, 3)
	b = msgpack.AppendRaw(b, []byte("01234567key"))
	b = msgpack.AppendUint(b, uint64(exp))
	return msgpack.AppendBool(b, false)
}

func TestParseLeaseRejects(t *testing.T) {
	for _, p := range [][]byte{
		leaseParams(3, 0, false, 0),                  // unknown operation
		leaseParams(wire.LeaseWin, 7, false, 0)[:12], // cut short
		msgpack.AppendArrayHeader(nil, 4),            // too few fields
	} {
		var op writeOp
		if err := op.parse(&rpc.Request{Method: wire.SrvLease, Params: p}); err == nil {
			t.Fatalf("parse(% x) accepted", p)
		}
	}
}

// Ensure that a win keeps the item's CAS unique, as memcached's does, and
// that a win that loses says what it lost to: the current version's CAS
// unique and whether its token is out. An embedded gateway reads a replica,
// which may not have stored the winner's version yet; without this, a
// loser that read that replica again found the version it had tried and,
// after a few such tries, answered neither W nor Z.
func TestLeaseLostReply(t *testing.T) {
	_, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	storeKey(t, cl, wire.OpSet, "k", "v")
	v, _ := getKey(t, cl, wire.SrvGet, "k")
	win := func(cas uint64) (status, clock uint64, token bool) {
		res := call(t, cl, wire.SrvLease, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 5)
			b = msgpack.AppendRaw(b, dbkey("k"))
			b = msgpack.AppendUint(b, wire.LeaseWin)
			b = msgpack.AppendUint(b, cas)
			b = msgpack.AppendBool(b, false)
			return msgpack.AppendUint(b, 0)
		})
		n, p, err := msgpack.ReadArrayHeader(res)
		if err == nil && n != 3 {
			t.Fatalf("lease reply % x: %d elements, want 3", res, n)
		}
		if err == nil {
			status, p, err = msgpack.ReadUint(p)
		}
		if err == nil {
			clock, p, err = msgpack.ReadUint(p)
		}
		if err == nil {
			token, _, err = msgpack.ReadBool(p)
		}
		if err != nil {
			t.Fatalf("lease reply % x: %v", res, err)
		}
		return status, clock, token
	}
	st, won, tok := win(v.Clock)
	if st != wire.StatusOK || won != v.Clock || tok {
		t.Fatalf("win = status %d CAS %x token %v; want OK and the CAS unique kept, %x", st, won, tok, v.Clock)
	}
	if st, c, tok := win(v.Clock); st != wire.StatusExists || c != won || !tok {
		t.Fatalf("losing win = status %d clock %x token %v; want exists at %x with the token out", st, c, tok, won)
	}
	storeKey(t, cl, wire.OpSet, "k", "w") // a set clears the token
	cur, _ := getKey(t, cl, wire.SrvGet, "k")
	if st, c, tok := win(won); st != wire.StatusExists || c != cur.Clock || tok {
		t.Fatalf("win on a changed item = status %d clock %x token %v; want exists at %x, no token", st, c, tok, cur.Clock)
	}
}
