package wire

import (
	"testing"

	"kumofs/proto/msgpack"
	"kumofs/ring"
)

// Ensure that the hash-space messages decode with and without their
// optional clock and trailing parameters, and that every malformed or
// truncated form is refused.
func TestReadSpaces(t *testing.T) {
	a, _ := ring.ParseAddr("127.0.0.1:19801", 19800)
	hs := ring.New([]ring.Node{{Addr: a, Active: true}}, 77)
	two := msgpack.AppendArrayHeader(nil, 3)
	two = hs.AppendSeed(two)
	two = hs.AppendSeed(two)
	two = msgpack.AppendUint(two, 99)
	sp, err := ReadSpaces(two, 2)
	if err != nil || sp.W.Clock() != 77 || sp.R.Clock() != 77 || sp.Clock != 99 || sp.More != 0 {
		t.Fatalf("two seeds: %+v %v", sp, err)
	}
	one := msgpack.AppendArrayHeader(nil, 3)
	one = hs.AppendSeed(one)
	one = msgpack.AppendUint(one, 5)
	one = msgpack.AppendBool(one, true)
	sp, err = ReadSpaces(one, 1)
	if err != nil || sp.R != nil || sp.Clock != 5 || sp.More != 1 {
		t.Fatalf("one seed: %+v %v", sp, err)
	}
	if full, _, err := msgpack.ReadBool(sp.Rest); err != nil || !full {
		t.Fatalf("rest: %v %v", full, err)
	}
	bare := hs.AppendSeed(msgpack.AppendArrayHeader(nil, 1))
	if sp, err = ReadSpaces(bare, 1); err != nil || sp.Clock != 0 {
		t.Fatalf("seed alone: %+v %v", sp, err)
	}
	for i := 0; i < len(two); i++ {
		if _, err := ReadSpaces(two[:i], 2); err != ErrBadParams {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
	if _, err := ReadSpaces(bare, 2); err != ErrBadParams {
		t.Fatalf("missing seed: %v", err)
	}
}
