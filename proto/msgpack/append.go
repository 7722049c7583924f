package msgpack

import (
	"encoding/binary"
	"math"
)

// AppendNil appends nil (0xc0).
func AppendNil(b []byte) []byte { return append(b, mNil) }

// AppendBool appends true (0xc3) or false (0xc2).
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, mTrue)
	}
	return append(b, mFalse)
}

// AppendInt appends v in its smallest encoding. Non-negative values use the
// unsigned forms, as msgpack-c does.
func AppendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return AppendUint(b, uint64(v))
	}
	switch {
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, mInt8, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, mInt16), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, mInt32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, mInt64), uint64(v))
}

// AppendUint appends v in its smallest encoding.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= posFixintMax:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, mUint8, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mUint16), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, mUint32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, mUint64), v)
}

// AppendFloat64 appends v as a float64 (0xcb).
func AppendFloat64(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, mFloat64), math.Float64bits(v))
}

// AppendRaw appends p as an old-spec raw: fixraw up to 31 bytes, raw16 up to
// 65535 bytes, raw32 beyond. It never emits str8 or bin. A nil or empty p
// encodes as the empty raw 0xa0, not as nil.
func AppendRaw(b []byte, p []byte) []byte {
	return append(appendRawHeader(b, len(p)), p...)
}

// AppendString appends s with the same raw encoding as AppendRaw.
func AppendString(b []byte, s string) []byte {
	return append(appendRawHeader(b, len(s)), s...)
}

// AppendRawHeader appends only the header of a raw of n bytes; the caller
// appends exactly n bytes next. It lets callers build a raw from pieces
// (for example BE64(hash) followed by a key) without a temporary buffer.
func AppendRawHeader(b []byte, n uint32) []byte { return appendRawHeader(b, int(n)) }

func appendRawHeader(b []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(b, fixrawPrefix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mRaw16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, mRaw32), uint32(n))
}

// AppendArrayHeader appends the header of an array of n elements; the caller
// appends the n elements next.
func AppendArrayHeader(b []byte, n uint32) []byte {
	switch {
	case n <= 15:
		return append(b, fixarrPrefix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mArray16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, mArray32), n)
}

// AppendMapHeader appends the header of a map of n key/value pairs; the caller
// appends 2n objects next.
func AppendMapHeader(b []byte, n uint32) []byte {
	switch {
	case n <= 15:
		return append(b, fixmapPrefix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, mMap16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, mMap32), n)
}
