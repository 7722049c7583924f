package benchload

import (
	"bytes"
	"testing"
)

func testVerifier(size int) *verifier {
	v := &verifier{size: size, keys: make([]keyState, 4)}
	copy(v.runID[:], "0badcafe")
	return v
}

func TestFillLayout(t *testing.T) {
	v := testVerifier(40)
	dst := make([]byte, 40)
	v.fill(dst, []byte("kb:0000000002"), 2, 7)
	want := "0badcafe:0000000007:kb:0000000002:" // then filler
	if !bytes.HasPrefix(dst, []byte(want)) {
		t.Fatalf("value %q, want prefix %q", dst, want)
	}
	seed := uint32(2*7 + 7*13)
	for i := len(want); i < 40; i++ {
		if dst[i] != 'a'+byte((seed+uint32(i))%26) {
			t.Fatalf("filler byte %d = %q", i, dst[i])
		}
	}
}

func TestCheck(t *testing.T) {
	const size = 48
	key := []byte("kb:0000000001")
	v := testVerifier(size)
	val := func(ver uint32) []byte {
		b := make([]byte, size)
		v.fill(b, key, 1, ver)
		return b
	}
	corrupt := val(3)
	corrupt[size-1] ^= 1
	badDigits := val(3)
	badDigits[versionOff] = 'x'
	other := val(3)
	copy(other, "ffffffff")
	otherKey := func(ver uint32) []byte {
		b := make([]byte, size)
		v.fill(b, []byte("kb:0000000002"), 2, ver)
		return b
	}
	tests := []struct {
		name       string
		lo, issued uint32
		maybe      uint64
		hit        bool
		val        []byte
		want       string
	}{
		{"miss before any ack", 0, 1, 0, false, nil, ""},
		{"miss after ack", 2, 2, 0, false, nil, wrongLost},
		{"acked version", 3, 3, 0, true, val(3), ""},
		{"in-flight newer version", 3, 4, 0, true, val(4), ""},
		{"stale", 3, 3, 0, true, val(2), wrongStale},
		{"never sent", 3, 3, 0, true, val(5), wrongFuture},
		{"corrupt filler", 3, 3, 0, true, corrupt, wrongCorrupt},
		{"corrupt version digits", 3, 3, 0, true, badDigits, wrongCorrupt},
		{"other run before ack", 0, 1, 0, true, other, ""},
		{"other run after ack", 1, 1, 0, true, other, wrongForeign},
		{"short value after ack", 1, 1, 0, true, []byte("x"), wrongForeign},
		{"another key's value, acceptable version", 3, 3, 0, true, otherKey(3), wrongKey},
		{"another key's value, version never sent", 3, 3, 0, true, otherKey(9), wrongKey},
		{"another key's value before any ack", 0, 1, 0, true, otherKey(1), wrongKey},
		{"unknown outcome below ack", 5, 5, 2<<32 | 2, true, val(2), ""},
		{"below unknown outcome range", 5, 5, 2<<32 | 2, true, val(1), wrongStale},
	}
	scratch := make([]byte, size)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := &v.keys[1]
			ks.acked.Store(tt.lo)
			ks.issued.Store(tt.issued)
			ks.maybe.Store(tt.maybe)
			if got := v.check(key, 1, tt.hit, tt.val, tt.lo, scratch); got != tt.want {
				t.Fatalf("check = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAddMaybe(t *testing.T) {
	var k keyState
	for _, v := range []uint32{7, 3, 9} {
		k.addMaybe(v)
	}
	if got := k.maybe.Load(); got != 3<<32|9 {
		t.Fatalf("maybe = %#x, want 3..9", got)
	}
}
