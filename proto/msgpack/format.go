// Package msgpack is a small, allocation-free MessagePack codec speaking the
// old (pre-2013) dialect that kumofs uses.
//
// Encoders append to a caller-owned slice and return it, in the style of
// strconv.AppendInt:
//
//	b = msgpack.AppendArrayHeader(b, 2)
//	b = msgpack.AppendUint(b, 42)
//	b = msgpack.AppendRaw(b, key)
//
// Decoders take the input and return the decoded value plus the rest of the
// input:
//
//	n, b, err := msgpack.ReadArrayHeader(b)
//	id, b, err := msgpack.ReadUint(b)
//	key, b, err := msgpack.ReadRaw(b)
//
// # Dialect
//
// Byte strings are only ever emitted as fixraw (0xa0-0xbf), raw16 (0xda) and
// raw32 (0xdb), never as str8 (0xd9), bin (0xc4-0xc6) or ext, because an old
// kumofs node fails to parse those bytes. On input, str8 and bin are accepted
// and decode exactly like raw; ext values can be skipped (Skip, NextType) but
// not read. Strings are never validated as UTF-8: they are arbitrary bytes.
// Integers are emitted in their smallest form; readers accept every integer
// width whose value fits the target.
//
// # Hostile input
//
// Every reader is safe on arbitrary input. When the input ends before the
// value does, a reader returns ErrShort and consumes nothing (rest == b), so a
// stream reader can read more bytes and retry. A declared length or element
// count larger than the bytes present is reported as ErrShort too (every
// element takes at least one byte), so no reader allocates or loops by a
// declared size. Skip caps container nesting at MaxDepth. No reader panics.
//
// # Lifetime of byte views
//
// ReadRaw and ReadRawOrNil return views that alias the input slice: they are
// valid exactly as long as the caller's input buffer is, and must be copied
// before that buffer is reused (for example a pooled network read buffer).
package msgpack

// Format bytes. Multi-byte numbers and lengths that follow them are big-endian.
const (
	posFixintMax = 0x7f // 0xxxxxxx: 0..127
	fixmapPrefix = 0x80 // 1000xxxx: map of up to 15 pairs
	fixarrPrefix = 0x90 // 1001xxxx: array of up to 15 elements
	fixrawPrefix = 0xa0 // 101xxxxx: raw (fixstr) of up to 31 bytes
	mNil         = 0xc0
	mNeverUsed   = 0xc1
	mFalse       = 0xc2
	mTrue        = 0xc3
	mBin8        = 0xc4 // new spec: accepted, never emitted
	mBin16       = 0xc5
	mBin32       = 0xc6
	mExt8        = 0xc7 // new spec: skipped, never emitted
	mExt16       = 0xc8
	mExt32       = 0xc9
	mFloat32     = 0xca
	mFloat64     = 0xcb
	mUint8       = 0xcc
	mUint16      = 0xcd
	mUint32      = 0xce
	mUint64      = 0xcf
	mInt8        = 0xd0
	mInt16       = 0xd1
	mInt32       = 0xd2
	mInt64       = 0xd3
	mFixext1     = 0xd4 // new spec: skipped, never emitted
	mFixext2     = 0xd5
	mFixext4     = 0xd6
	mFixext8     = 0xd7
	mFixext16    = 0xd8
	mStr8        = 0xd9 // new spec: accepted, never emitted
	mRaw16       = 0xda // old name of str16
	mRaw32       = 0xdb // old name of str32
	mArray16     = 0xdc
	mArray32     = 0xdd
	mMap16       = 0xde
	mMap32       = 0xdf
	negFixintMin = 0xe0 // 111xxxxx: -32..-1
)

// MaxDepth is the deepest container nesting Skip accepts. A top-level array
// has depth 1; an array inside it has depth 2.
const MaxDepth = 64

// Type is the kind of the next value in the input, as reported by NextType.
type Type uint8

// Types reported by NextType.
const (
	InvalidType Type = iota // empty input or the never-used byte 0xc1
	NilType
	BoolType
	IntType // any integer format, signed or unsigned
	FloatType
	RawType // fixraw, str8, raw16, raw32, bin8/16/32
	ArrayType
	MapType
	ExtType // ext and fixext (new spec; skippable, not readable)
)

var typeNames = [...]string{
	InvalidType: "invalid",
	NilType:     "nil",
	BoolType:    "bool",
	IntType:     "int",
	FloatType:   "float",
	RawType:     "raw",
	ArrayType:   "array",
	MapType:     "map",
	ExtType:     "ext",
}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "invalid"
}

// typeOf classifies a format byte.
func typeOf(c byte) Type {
	switch {
	case c <= posFixintMax || c >= negFixintMin:
		return IntType
	case c < fixarrPrefix:
		return MapType
	case c < fixrawPrefix:
		return ArrayType
	case c < mNil:
		return RawType
	}
	switch c {
	case mNil:
		return NilType
	case mFalse, mTrue:
		return BoolType
	case mBin8, mBin16, mBin32, mStr8, mRaw16, mRaw32:
		return RawType
	case mExt8, mExt16, mExt32, mFixext1, mFixext2, mFixext4, mFixext8, mFixext16:
		return ExtType
	case mFloat32, mFloat64:
		return FloatType
	case mUint8, mUint16, mUint32, mUint64, mInt8, mInt16, mInt32, mInt64:
		return IntType
	case mArray16, mArray32:
		return ArrayType
	case mMap16, mMap32:
		return MapType
	}
	return InvalidType // 0xc1
}

// NextType reports the type of the value at the start of b without decoding
// it. It returns InvalidType for empty input and for the byte 0xc1.
func NextType(b []byte) Type {
	if len(b) == 0 {
		return InvalidType
	}
	return typeOf(b[0])
}
