package msgpack

import (
	"encoding/binary"
	"math"
)

// All readers follow one contract: on success they return the value and the
// input after it; on error they return the unchanged input as rest.

// ReadNil reads nil.
func ReadNil(b []byte) (rest []byte, err error) {
	if len(b) == 0 {
		return b, ErrShort
	}
	if b[0] != mNil {
		return b, typeErr(NilType, b[0])
	}
	return b[1:], nil
}

// IsNil reports whether the next value in b is nil.
func IsNil(b []byte) bool { return len(b) > 0 && b[0] == mNil }

// ReadBool reads true or false.
func ReadBool(b []byte) (v bool, rest []byte, err error) {
	if len(b) == 0 {
		return false, b, ErrShort
	}
	switch b[0] {
	case mTrue:
		return true, b[1:], nil
	case mFalse:
		return false, b[1:], nil
	}
	return false, b, typeErr(BoolType, b[0])
}

// readInteger decodes any integer format. For neg == true the value is
// int64(u) < 0; otherwise it is u >= 0. n is the number of bytes consumed.
func readInteger(b []byte) (u uint64, neg bool, n int, err error) {
	if len(b) == 0 {
		return 0, false, 0, ErrShort
	}
	c := b[0]
	if c <= posFixintMax {
		return uint64(c), false, 1, nil
	}
	if c >= negFixintMin {
		return uint64(int64(int8(c))), true, 1, nil
	}
	var size int
	switch c {
	case mUint8, mInt8:
		size = 1
	case mUint16, mInt16:
		size = 2
	case mUint32, mInt32:
		size = 4
	case mUint64, mInt64:
		size = 8
	default:
		return 0, false, 0, typeErr(IntType, c)
	}
	if len(b) < 1+size {
		return 0, false, 0, ErrShort
	}
	p := b[1 : 1+size]
	var s int64
	switch c {
	case mUint8:
		return uint64(p[0]), false, 2, nil
	case mUint16:
		return uint64(binary.BigEndian.Uint16(p)), false, 3, nil
	case mUint32:
		return uint64(binary.BigEndian.Uint32(p)), false, 5, nil
	case mUint64:
		return binary.BigEndian.Uint64(p), false, 9, nil
	case mInt8:
		s = int64(int8(p[0]))
	case mInt16:
		s = int64(int16(binary.BigEndian.Uint16(p)))
	case mInt32:
		s = int64(int32(binary.BigEndian.Uint32(p)))
	default: // mInt64
		s = int64(binary.BigEndian.Uint64(p))
	}
	return uint64(s), s < 0, 1 + size, nil
}

// ReadInt reads any integer format whose value fits an int64; a uint64 above
// math.MaxInt64 gives ErrRange.
func ReadInt(b []byte) (v int64, rest []byte, err error) {
	u, neg, n, err := readInteger(b)
	if err != nil {
		return 0, b, err
	}
	if !neg && u > math.MaxInt64 {
		return 0, b, ErrRange
	}
	return int64(u), b[n:], nil
}

// ReadUint reads any integer format whose value is non-negative (including
// a non-negative value packed as int8..int64); a negative value gives
// ErrRange.
func ReadUint(b []byte) (v uint64, rest []byte, err error) {
	u, neg, n, err := readInteger(b)
	if err != nil {
		return 0, b, err
	}
	if neg {
		return 0, b, ErrRange
	}
	return u, b[n:], nil
}

// ReadUint32 is ReadUint for values that must fit a uint32 (msgids, method
// numbers, flags); a larger value gives ErrRange.
func ReadUint32(b []byte) (v uint32, rest []byte, err error) {
	u, rest, err := ReadUint(b)
	if err != nil {
		return 0, b, err
	}
	if u > math.MaxUint32 {
		return 0, b, ErrRange
	}
	return uint32(u), rest, nil
}

// ReadFloat64 reads a float64 or a float32 (widened).
func ReadFloat64(b []byte) (v float64, rest []byte, err error) {
	if len(b) == 0 {
		return 0, b, ErrShort
	}
	switch b[0] {
	case mFloat32:
		if len(b) < 5 {
			return 0, b, ErrShort
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(b[1:]))), b[5:], nil
	case mFloat64:
		if len(b) < 9 {
			return 0, b, ErrShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b[1:])), b[9:], nil
	}
	return 0, b, typeErr(FloatType, b[0])
}

// rawHeader decodes the header of any raw/str/bin format: hdr is the header
// size and n the declared payload length. ok is false if b[0] is not a raw
// format; err is ErrShort if the header itself is incomplete.
func rawHeader(b []byte) (hdr int, n uint64, ok bool, err error) {
	c := b[0]
	if c&0xe0 == fixrawPrefix {
		return 1, uint64(c & 0x1f), true, nil
	}
	switch c {
	case mStr8, mBin8:
		hdr = 2
	case mRaw16, mBin16:
		hdr = 3
	case mRaw32, mBin32:
		hdr = 5
	default:
		return 0, 0, false, nil
	}
	if len(b) < hdr {
		return 0, 0, true, ErrShort
	}
	switch hdr {
	case 2:
		n = uint64(b[1])
	case 3:
		n = uint64(binary.BigEndian.Uint16(b[1:]))
	default:
		n = uint64(binary.BigEndian.Uint32(b[1:]))
	}
	return hdr, n, true, nil
}

// ReadRaw reads a byte string in any of fixraw, str8, raw16 (str16), raw32
// (str32) and bin8/16/32. v aliases b: it is valid as long as b's backing
// array is and must be copied to be kept beyond that. An empty raw gives a
// non-nil empty v.
func ReadRaw(b []byte) (v, rest []byte, err error) {
	if len(b) == 0 {
		return nil, b, ErrShort
	}
	hdr, n, ok, err := rawHeader(b)
	if !ok {
		return nil, b, typeErr(RawType, b[0])
	}
	if err != nil {
		return nil, b, err
	}
	if uint64(len(b)-hdr) < n {
		return nil, b, ErrShort
	}
	end := hdr + int(n)
	return b[hdr:end:end], b[end:], nil
}

// ReadRawOrNil reads a raw like ReadRaw, or nil, which it reports with
// isNil == true and v == nil. It keeps nil distinct from an empty raw.
func ReadRawOrNil(b []byte) (v []byte, isNil bool, rest []byte, err error) {
	if IsNil(b) {
		return nil, true, b[1:], nil
	}
	v, rest, err = ReadRaw(b)
	return v, false, rest, err
}

// containerHeader decodes an array or map header: hdr is the header size
// and n the declared count. ok is false if b[0] is not of that kind.
func containerHeader(b []byte, fixPrefix, m16, m32 byte) (hdr int, n uint32, ok bool, err error) {
	c := b[0]
	if c&0xf0 == fixPrefix {
		return 1, uint32(c & 0x0f), true, nil
	}
	switch c {
	case m16:
		if len(b) < 3 {
			return 0, 0, true, ErrShort
		}
		return 3, uint32(binary.BigEndian.Uint16(b[1:])), true, nil
	case m32:
		if len(b) < 5 {
			return 0, 0, true, ErrShort
		}
		return 5, binary.BigEndian.Uint32(b[1:]), true, nil
	}
	return 0, 0, false, nil
}

// ReadArrayHeader reads an array header. The caller then reads n elements.
// A count larger than the bytes left after the header gives ErrShort (every
// element takes at least one byte), so n is always <= len(rest).
func ReadArrayHeader(b []byte) (n uint32, rest []byte, err error) {
	if len(b) == 0 {
		return 0, b, ErrShort
	}
	hdr, n, ok, err := containerHeader(b, fixarrPrefix, mArray16, mArray32)
	if !ok {
		return 0, b, typeErr(ArrayType, b[0])
	}
	if err != nil {
		return 0, b, err
	}
	if uint64(n) > uint64(len(b)-hdr) {
		return 0, b, ErrShort
	}
	return n, b[hdr:], nil
}

// ReadMapHeader reads a map header. The caller then reads 2n objects. A count
// larger than half the bytes left gives ErrShort, so 2n <= len(rest).
func ReadMapHeader(b []byte) (n uint32, rest []byte, err error) {
	if len(b) == 0 {
		return 0, b, ErrShort
	}
	hdr, n, ok, err := containerHeader(b, fixmapPrefix, mMap16, mMap32)
	if !ok {
		return 0, b, typeErr(MapType, b[0])
	}
	if err != nil {
		return 0, b, err
	}
	if 2*uint64(n) > uint64(len(b)-hdr) {
		return 0, b, ErrShort
	}
	return n, b[hdr:], nil
}
