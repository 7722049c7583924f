package server

import (
	"testing"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/store"
)

// arithParams encodes SrvArith params; with ext, the trailing cas, touch
// and new_exptime fields that ma's C and T need.
func arithParams(delta uint64, create bool, initial uint64, exptime uint32, ext bool, cas uint64, touch bool, newExp uint32) []byte {
	n := uint32(6)
	if ext {
		n = 9
	}
	b := msgpack.AppendArrayHeader(nil, n)
	b = msgpack.AppendRaw(b, []byte("01234567key"))
	b = msgpack.AppendUint(b, delta)
	b = msgpack.AppendBool(b, false)
	b = msgpack.AppendBool(b, create)
	b = msgpack.AppendUint(b, initial)
	b = msgpack.AppendUint(b, uint64(exptime))
	if ext {
		b = msgpack.AppendUint(b, cas)
		b = msgpack.AppendBool(b, touch)
		b = msgpack.AppendUint(b, uint64(newExp))
	}
	return b
}

func TestDecideArith(t *testing.T) {
	old := store.Record{Value: []byte("41"), Clock: 77, Flags: 3, Exptime: 500}
	tests := []struct {
		name    string
		params  []byte
		exists  bool
		status  int
		num     uint64
		value   string
		exptime uint32
		empty   bool // the stored value is empty
	}{
		{"old peer: 6 fields", arithParams(1, false, 0, 0, false, 0, false, 0), true, wire.StatusOK, 42, "42", 500, false},
		{"cas matches", arithParams(1, false, 0, 0, true, 77, false, 0), true, wire.StatusOK, 42, "42", 500, false},
		{"cas differs", arithParams(1, false, 0, 0, true, 76, false, 0), true, wire.StatusExists, 0, "", 0, false},
		{"cas 0 does not compare", arithParams(2, false, 0, 0, true, 0, false, 0), true, wire.StatusOK, 43, "43", 500, false},
		{"touch", arithParams(1, false, 0, 0, true, 0, true, 900), true, wire.StatusOK, 42, "42", 900, false},
		{"touch to never", arithParams(1, false, 0, 0, true, 0, true, 0), true, wire.StatusOK, 42, "42", 0, false},
		{"missing", arithParams(1, false, 0, 0, true, 5, true, 900), false, wire.StatusNotFound, 0, "", 0, false},
		{"create ignores cas and touch", arithParams(1, true, 9, 600, true, 5, true, 900), false, wire.StatusOK, 9, "9", 600, false},
		{"empty value: non-numeric before the cas compare", arithParams(1, false, 0, 0, true, 76, false, 0), true, wire.StatusNonNumeric, 0, "", 0, true},
		// memcached rewrites a counter in place when the number fits,
		// padded with spaces to the old length.
		{"an incr that wraps shrinks: padded", arithParams(18446744073709551583, false, 0, 0, false, 0, false, 0), true, wire.StatusOK, 8, "8 ", 500, false},
		{"incr grows: replaced", arithParams(59, false, 0, 0, false, 0, false, 0), true, wire.StatusOK, 100, "100", 500, false},
	}
	var s Server
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var op writeOp
			if err := op.parse(&rpc.Request{Method: wire.SrvArith, Params: tt.params}); err != nil {
				t.Fatalf("parse: %v", err)
			}
			var oldp *store.Record
			if tt.exists {
				o := old
				if tt.empty {
					o.Value = nil
				}
				oldp = &o
			}
			rec, status, num, err := s.decide(&op, oldp, tt.exists)
			if err != nil || status != tt.status || num != tt.num {
				t.Fatalf("decide = status %d num %d err %v; want %d %d", status, num, err, tt.status, tt.num)
			}
			if status != wire.StatusOK {
				return
			}
			if string(rec.Value) != tt.value || rec.Exptime != tt.exptime {
				t.Errorf("record value %q exptime %d; want %q %d", rec.Value, rec.Exptime, tt.value, tt.exptime)
			}
			if tt.exists && rec.Flags != old.Flags {
				t.Errorf("flags %d, want %d kept", rec.Flags, old.Flags)
			}
		})
	}
}

func TestParseArithTruncated(t *testing.T) {
	p := arithParams(1, false, 0, 0, true, 7, true, 9)
	// Nine fields announced, the last one cut off.
	p = p[:len(p)-1]
	var op writeOp
	if err := op.parse(&rpc.Request{Method: wire.SrvArith, Params: p}); err != errParams {
		t.Fatalf("parse = %v, want errParams", err)
	}
}
