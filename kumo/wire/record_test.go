package wire

import (
	"bytes"
	"testing"
)

// Ensure that DBValue round-trips, and that meta 0 is kumofs's exact layout.
func TestDBValueRoundTrip(t *testing.T) {
	cases := []struct {
		v    Value
		want []byte
	}{
		{Value{Clock: 0x0102030405060708, Data: []byte("hi")},
			[]byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 'h', 'i'}},
		{Value{Clock: 1, Flags: 0xdeadbeef, Data: []byte("x")},
			[]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0xde, 0xad, 0xbe, 0xef, 'x'}},
		{Value{Clock: 1, Exptime: 7},
			[]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 7}},
		{Value{Clock: 1, Flags: 2, Exptime: 3, Data: []byte("")},
			[]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 0, 0, 0, 2, 0, 0, 0, 3}},
		{Value{Clock: 9, Tombstone: true}, []byte{0, 0, 0, 0, 0, 0, 0, 9}},
		{Value{Clock: 1, Stale: true, Data: []byte("s")},
			[]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 's'}},
		{Value{Clock: 1, Flags: 5, TokenSent: true, Data: []byte("t")},
			[]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 9, 0, 0, 0, 5, 't'}},
		{Value{Clock: 1, Exptime: 6, Stale: true, TokenSent: true},
			[]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 14, 0, 0, 0, 6}},
		{Value{Clock: 9, Flags: 5, Exptime: 6, Cas: 0x0a0b, Data: []byte("c")},
			[]byte{0, 0, 0, 0, 0, 0, 0, 9, 0, 0x13, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b, 'c'}},
		{Value{Clock: 9, Cas: 3},
			[]byte{0, 0, 0, 0, 0, 0, 0, 9, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 3}},
	}
	for i, c := range cases {
		got := AppendDBValue(nil, &c.v)
		if !bytes.Equal(got, c.want) {
			t.Fatalf("case %d: encoded % x, want % x", i, got, c.want)
		}
		if DBValueLen(&c.v) != len(got) {
			t.Fatalf("case %d: DBValueLen %d, encoded %d", i, DBValueLen(&c.v), len(got))
		}
		back, err := ParseDBValue(got)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if back.Clock != c.v.Clock || back.Flags != c.v.Flags || back.Exptime != c.v.Exptime ||
			back.Tombstone != c.v.Tombstone || back.Stale != c.v.Stale || back.TokenSent != c.v.TokenSent ||
			back.Cas != c.v.Cas || back.CAS() != c.v.CAS() || !bytes.Equal(back.Data, c.v.Data) {
			t.Fatalf("case %d: round trip %+v, want %+v", i, back, c.v)
		}
	}
	// A tombstone does not carry a CAS unique.
	if got := AppendDBValue(nil, &Value{Clock: 4, Cas: 2, Tombstone: true}); len(got) != 8 {
		t.Fatalf("tombstone encoded as % x", got)
	}
	if v := (Value{Clock: 7}); v.CAS() != 7 {
		t.Fatalf("CAS() of a value without its own: %d", v.CAS())
	}
}

// Ensure that malformed values are refused, never misread.
func TestParseDBValueRejects(t *testing.T) {
	for _, b := range [][]byte{
		nil, {1}, {0, 0, 0, 0, 0, 0, 0, 0, 0}, // 9 bytes
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20},                         // unknown meta bit
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0},    // CAS unique cut short
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0}, // CAS unique 0
		{0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0},                         // unknown meta bit
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0},                      // flags cut short
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, 0},             // exptime cut short
	} {
		if _, err := ParseDBValue(b); err != ErrBadValue {
			t.Fatalf("ParseDBValue(% x) = %v, want ErrBadValue", b, err)
		}
	}
}

func FuzzParseDBValue(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 0, 0, 0, 2, 0, 0, 0, 3, 'a'})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 9})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 9, 0, 0x11, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 3, 'c'})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseDBValue(b)
		if err != nil {
			return
		}
		got := AppendDBValue(nil, &v)
		if len(got) != DBValueLen(&v) {
			t.Fatalf("length mismatch")
		}
		if back, err := ParseDBValue(got); err != nil || back.Stale != v.Stale || back.TokenSent != v.TokenSent ||
			back.CAS() != v.CAS() || !bytes.Equal(back.Data, v.Data) {
			t.Fatalf("re-encoded %+v: %v", back, err)
		}
	})
}

// Ensure that appending large values to a buffer doubles it when it is
// full (a handful of copies for a burst), and leaves small values and
// buffers with room to append's own growth.
func TestAppendDBValueGrowth(t *testing.T) {
	v := Value{Clock: 1, Data: make([]byte, 1<<20)}
	var b []byte
	moves := 0
	for range 16 {
		old := cap(b)
		b = AppendDBValue(b, &v)
		if cap(b) != old {
			moves++
			if old > 0 && cap(b) < 2*old {
				t.Fatalf("grew from %d to %d, want at least double", old, cap(b))
			}
		}
	}
	if moves > 5 {
		t.Fatalf("%d reallocations for 16 values of 1 MiB, want at most 5", moves)
	}
	if got, want := len(b), 16*(DBValueLen(&v)); got != want {
		t.Fatalf("len %d, want %d", got, want)
	}
	small := make([]byte, 0, 64)
	if got := AppendDBValue(small, &Value{Clock: 1, Data: []byte("x")}); &got[0] != &small[:1][0] {
		t.Fatal("a small value that fits was not appended in place")
	}
}
