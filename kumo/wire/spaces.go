package wire

import (
	"errors"

	"kumofs/proto/msgpack"
	"kumofs/ring"
)

// ErrBadParams reports parameters that do not have the documented shape.
var ErrBadParams = errors.New("wire: bad parameters")

// Spaces are the decoded parameters of the hash-space messages:
// HashSpaceSync [wseed, rseed, clock], ReplaceCopyStart [wseed, clock,
// full] and ReplaceDeleteStart [wseed, clock].
type Spaces struct {
	W, R  *ring.HashSpace // R is nil when the message carries one seed
	Clock uint64          // the sender's clock, 0 when absent
	Rest  []byte          // the parameters after the clock (e.g. full)
	More  int             // how many parameters Rest holds
}

// ReadSpaces decodes a params array that starts with nseeds (1 or 2)
// hash-space seeds, optionally followed by the sender's clock and more.
func ReadSpaces(params []byte, nseeds int) (Spaces, error) {
	var sp Spaces
	n, p, err := msgpack.ReadArrayHeader(params)
	if err != nil || int(n) < nseeds {
		return sp, ErrBadParams
	}
	if sp.W, p, err = ring.ReadSeed(p); err != nil {
		return sp, ErrBadParams
	}
	if nseeds == 2 {
		if sp.R, p, err = ring.ReadSeed(p); err != nil {
			return sp, ErrBadParams
		}
	}
	left := int(n) - nseeds
	if left > 0 {
		if sp.Clock, p, err = msgpack.ReadUint(p); err != nil {
			return sp, ErrBadParams
		}
		left--
	}
	sp.Rest, sp.More = p, left
	return sp, nil
}
