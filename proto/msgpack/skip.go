package msgpack

import "encoding/binary"

// Skip returns the input after the next complete value, of any format,
// including new-spec str8, bin and ext. It fails with ErrShort if the value is
// incomplete, ErrInvalid on the byte 0xc1 and ErrTooDeep if containers nest
// deeper than MaxDepth; on error rest is b. Skip does not allocate.
func Skip(b []byte) (rest []byte, err error) {
	n, err := skip(b, 0)
	if err != nil {
		return b, err
	}
	return b[n:], nil
}

// skip returns the encoded size of the value at the start of b, which sits
// inside depth open containers.
func skip(b []byte, depth int) (int, error) {
	if len(b) == 0 {
		return 0, ErrShort
	}
	c := b[0]
	switch t := typeOf(c); t {
	case InvalidType:
		return 0, ErrInvalid
	case NilType, BoolType:
		return 1, nil
	case IntType:
		_, _, n, err := readInteger(b)
		return n, err
	case FloatType:
		n := 5
		if c == mFloat64 {
			n = 9
		}
		if len(b) < n {
			return 0, ErrShort
		}
		return n, nil
	case RawType:
		hdr, n, _, err := rawHeader(b)
		if err != nil {
			return 0, err
		}
		if uint64(len(b)-hdr) < n {
			return 0, ErrShort
		}
		return hdr + int(n), nil
	case ExtType:
		return skipExt(b)
	case ArrayType, MapType:
		hdr, objs, err := containerObjs(b, t)
		if err != nil {
			return 0, err
		}
		if objs > uint64(len(b)-hdr) {
			return 0, ErrShort // every object takes at least one byte
		}
		if depth+1 > MaxDepth {
			return 0, ErrTooDeep
		}
		off := hdr
		for i := uint64(0); i < objs; i++ {
			m, err := skip(b[off:], depth+1)
			if err != nil {
				return 0, err
			}
			off += m
		}
		return off, nil
	}
	return 0, ErrInvalid // unreachable: typeOf covers every byte
}

// containerObjs decodes the header of the array or map (t) at b: its size
// and the number of objects that follow (two per map entry).
func containerObjs(b []byte, t Type) (hdr int, objs uint64, err error) {
	var n uint32
	if t == ArrayType {
		hdr, n, _, err = containerHeader(b, fixarrPrefix, mArray16, mArray32)
	} else {
		hdr, n, _, err = containerHeader(b, fixmapPrefix, mMap16, mMap32)
	}
	objs = uint64(n)
	if t == MapType {
		objs *= 2
	}
	return hdr, objs, err
}

// skipExt returns the size of an ext or fixext value.
func skipExt(b []byte) (int, error) {
	var hdr int // format byte, length, type byte
	var n uint64
	switch c := b[0]; c {
	case mFixext1, mFixext2, mFixext4, mFixext8, mFixext16:
		hdr, n = 2, uint64(1)<<(c-mFixext1)
	case mExt8:
		hdr = 3
		if len(b) < hdr {
			return 0, ErrShort
		}
		n = uint64(b[1])
	case mExt16:
		hdr = 4
		if len(b) < hdr {
			return 0, ErrShort
		}
		n = uint64(binary.BigEndian.Uint16(b[1:]))
	default: // mExt32
		hdr = 6
		if len(b) < hdr {
			return 0, ErrShort
		}
		n = uint64(binary.BigEndian.Uint32(b[1:]))
	}
	if uint64(len(b)) < uint64(hdr)+n {
		return 0, ErrShort
	}
	return hdr + int(n), nil
}

// MinSize returns a lower bound of the encoded size of the value that
// starts at b, from the headers b holds: the exact size when b holds the
// whole value, at least len(b)+1 when it is cut short, and never more than
// the size of any complete value that b is a prefix of. A reader can refuse
// a value as too large as soon as its headers arrive, instead of buffering
// it up to its limit. Invalid input gives len(b)+1 (Skip reports it).
func MinSize(b []byte) uint64 {
	return minSize(b, 0)
}

func minSize(b []byte, depth int) uint64 {
	short := uint64(len(b)) + 1
	if len(b) == 0 {
		return 1
	}
	c := b[0]
	switch t := typeOf(c); t {
	case NilType, BoolType:
		return 1
	case IntType:
		_, _, n, err := readInteger(b)
		if err != nil {
			return max(short, intSize(c))
		}
		return uint64(n)
	case FloatType:
		if c == mFloat64 {
			return 9
		}
		return 5
	case RawType:
		hdr, n, _, err := rawHeader(b)
		if err != nil {
			return short
		}
		return uint64(hdr) + n
	case ExtType:
		if n, err := skipExt(b); err == nil {
			return uint64(n)
		}
		return short
	case ArrayType, MapType:
		hdr, objs, err := containerObjs(b, t)
		if err != nil {
			return short
		}
		if depth+1 > MaxDepth {
			return short
		}
		off := uint64(hdr)
		for i := uint64(0); i < objs; i++ {
			if off >= uint64(len(b)) {
				return off + objs - i // every object takes at least one byte
			}
			m := minSize(b[off:], depth+1)
			if m > uint64(len(b))-off { // this element is cut short
				return off + m + objs - i - 1
			}
			off += m
		}
		return off
	}
	return short
}

// intSize is the encoded size of an integer with format byte c.
func intSize(c byte) uint64 {
	switch c {
	case mUint8, mInt8:
		return 2
	case mUint16, mInt16:
		return 3
	case mUint32, mInt32:
		return 5
	case mUint64, mInt64:
		return 9
	}
	return 1
}
