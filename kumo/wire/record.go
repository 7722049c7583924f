package wire

import (
	"encoding/binary"
	"errors"
)

// Meta bits of a DBValue. A value with meta 0 is byte-identical to kumofs's.
const (
	MetaFlags   = 0x0001 // 4 bytes of big-endian memcached flags follow the meta
	MetaExptime = 0x0002 // 4 bytes of big-endian absolute exptime follow (after flags)
	// Lease bits (memcached's meta commands; no bytes follow). In a stored
	// or replicated value they are the record's state. In the value of a
	// SrvStore request they ask: MetaTokenSent with OpAdd creates the item
	// with its win token out (mg N); MetaStale with OpCAS lets a compare
	// against an older CAS unique store the value marked stale (ms I).
	// Servers older than these bits refuse a value carrying them (and do
	// not know SrvLease): upgrade servers before gateways.
	MetaStale     = 0x0004
	MetaTokenSent = 0x0008
	// MetaCas: 8 bytes of big-endian CAS unique follow (after flags and
	// exptime). A touch gives a value a new clock but keeps its CAS
	// unique, as memcached does; without the bit the clock is the CAS
	// unique. Only a coordinator sets it; servers older than the bit
	// refuse a value carrying it.
	MetaCas = 0x0010
)

// ErrBadValue reports a DBValue too short or with unknown meta bits.
var ErrBadValue = errors.New("wire: malformed DBValue")

// DBKeyLen returns the length of the DBKey of a key.
func DBKeyLen(key []byte) int { return 8 + len(key) }

// AppendDBKey appends BE64(hash) ‖ key, the kumofs stored-key layout.
func AppendDBKey(b []byte, hash uint64, key []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, hash)
	return append(b, key...)
}

// SplitDBKey returns the hash and the user key of a DBKey. The key aliases k.
func SplitDBKey(k []byte) (hash uint64, key []byte, ok bool) {
	if len(k) < 8 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(k), k[8:], true
}

// Value is a decoded DBValue. Data aliases the encoded bytes.
type Value struct {
	Clock     uint64
	Flags     uint32
	Exptime   uint32
	Data      []byte
	Tombstone bool
	Stale     bool   // MetaStale
	TokenSent bool   // MetaTokenSent
	Cas       uint64 // MetaCas: the CAS unique when it is not Clock (0: Clock)
}

// CAS returns the value's CAS unique: Cas, or Clock when Cas is 0.
func (v *Value) CAS() uint64 {
	if v.Cas != 0 {
		return v.Cas
	}
	return v.Clock
}

// hasCas reports whether v carries a CAS unique of its own.
func (v *Value) hasCas() bool { return !v.Tombstone && v.Cas != 0 }

// DBValueLen returns the encoded length of v.
func DBValueLen(v *Value) int {
	if v.Tombstone {
		return 8
	}
	n := 10 + len(v.Data)
	if v.Flags != 0 {
		n += 4
	}
	if v.Exptime != 0 {
		n += 4
	}
	if v.hasCas() {
		n += 8
	}
	return n
}

// AppendDBValue appends the encoding of v: BE64(clock) ‖ meta(2) ‖ [flags]
// ‖ [exptime] ‖ [CAS unique] ‖ data, or BE64(clock) alone for a tombstone.
func AppendDBValue(b []byte, v *Value) []byte {
	b = binary.BigEndian.AppendUint64(b, v.Clock)
	if v.Tombstone {
		return b
	}
	var meta uint16
	if v.Flags != 0 {
		meta |= MetaFlags
	}
	if v.Exptime != 0 {
		meta |= MetaExptime
	}
	if v.Stale {
		meta |= MetaStale
	}
	if v.TokenSent {
		meta |= MetaTokenSent
	}
	if v.hasCas() {
		meta |= MetaCas
	}
	b = binary.BigEndian.AppendUint16(b, meta)
	if v.Flags != 0 {
		b = binary.BigEndian.AppendUint32(b, v.Flags)
	}
	if v.Exptime != 0 {
		b = binary.BigEndian.AppendUint32(b, v.Exptime)
	}
	if meta&MetaCas != 0 {
		b = binary.BigEndian.AppendUint64(b, v.Cas)
	}
	return append(growFor(b, len(v.Data)), v.Data...)
}

// growFor makes room in b for n more bytes. A large value (64 KiB or more)
// that does not fit at least doubles b: append's own growth for a buffer
// of megabytes is about a quarter at a time, so a connection's write
// buffer that batches a burst of 1 MB values would be copied again for
// nearly every one, leaving several times its size in garbage.
func growFor(b []byte, n int) []byte {
	if n < 64<<10 || cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), max(2*cap(b), len(b)+n))
	copy(nb, b)
	return nb
}

// ParseDBValue decodes a DBValue. An 8-byte value is a tombstone (kumofs's
// deleted marker); anything else shorter than 10 bytes is malformed.
func ParseDBValue(b []byte) (Value, error) {
	var v Value
	if len(b) == 8 {
		v.Clock = binary.BigEndian.Uint64(b)
		v.Tombstone = true
		return v, nil
	}
	if len(b) < 10 {
		return v, ErrBadValue
	}
	v.Clock = binary.BigEndian.Uint64(b)
	meta := binary.BigEndian.Uint16(b[8:])
	p := b[10:]
	if meta&^(MetaFlags|MetaExptime|MetaStale|MetaTokenSent|MetaCas) != 0 {
		return v, ErrBadValue
	}
	v.Stale = meta&MetaStale != 0
	v.TokenSent = meta&MetaTokenSent != 0
	if meta&MetaFlags != 0 {
		if len(p) < 4 {
			return v, ErrBadValue
		}
		v.Flags = binary.BigEndian.Uint32(p)
		p = p[4:]
	}
	if meta&MetaExptime != 0 {
		if len(p) < 4 {
			return v, ErrBadValue
		}
		v.Exptime = binary.BigEndian.Uint32(p)
		p = p[4:]
	}
	if meta&MetaCas != 0 {
		if len(p) < 8 {
			return v, ErrBadValue
		}
		if v.Cas = binary.BigEndian.Uint64(p); v.Cas == 0 {
			return v, ErrBadValue // never sent: a CAS unique is not 0
		}
		p = p[8:]
	}
	v.Data = p
	return v, nil
}
