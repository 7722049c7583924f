package msgpack

import (
	"bytes"
	"math"
	"testing"
)

// extValue stands for a skipped ext value in decodeAny's output.
type extValue struct{ size int }

// decodeAny is a full, independent decode built only on the typed readers.
// FuzzSkip checks it consumes exactly what Skip consumes.
func decodeAny(b []byte, depth int) (any, []byte, error) {
	switch NextType(b) {
	case NilType:
		rest, err := ReadNil(b)
		return nil, rest, err
	case BoolType:
		return wrap(ReadBool(b))
	case IntType:
		if v, rest, err := ReadInt(b); err != ErrRange {
			return v, rest, err
		}
		return wrap(ReadUint(b)) // above math.MaxInt64
	case FloatType:
		return wrap(ReadFloat64(b))
	case RawType:
		return wrap(ReadRaw(b))
	case ExtType:
		n, err := skipExt(b)
		if err != nil {
			return nil, b, err
		}
		return extValue{n}, b[n:], nil
	case ArrayType, MapType:
		isMap := NextType(b) == MapType
		var n uint32
		var rest []byte
		var err error
		if isMap {
			n, rest, err = ReadMapHeader(b)
			n *= 2
		} else {
			n, rest, err = ReadArrayHeader(b)
		}
		if err != nil {
			return nil, b, err
		}
		if depth+1 > MaxDepth {
			return nil, b, ErrTooDeep
		}
		elems := make([]any, 0, n)
		for range n {
			var v any
			v, rest, err = decodeAny(rest, depth+1)
			if err != nil {
				return nil, b, err
			}
			elems = append(elems, v)
		}
		if isMap {
			return mapValue(elems), rest, nil
		}
		return elems, rest, nil
	}
	if len(b) == 0 {
		return nil, b, ErrShort
	}
	return nil, b, ErrInvalid
}

type mapValue []any

func wrap[T any](v T, rest []byte, err error) (any, []byte, error) { return v, rest, err }

// encodeAny re-encodes decodeAny's output with the encoders (ext values are
// not re-encodable and make it report false).
func encodeAny(b []byte, v any) ([]byte, bool) {
	ok := true
	switch v := v.(type) {
	case nil:
		b = AppendNil(b)
	case bool:
		b = AppendBool(b, v)
	case int64:
		b = AppendInt(b, v)
	case uint64:
		b = AppendUint(b, v)
	case float64:
		b = AppendFloat64(b, v)
	case []byte:
		b = AppendRaw(b, v)
	case []any:
		b = AppendArrayHeader(b, uint32(len(v)))
		for _, e := range v {
			var k bool
			b, k = encodeAny(b, e)
			ok = ok && k
		}
	case mapValue:
		b = AppendMapHeader(b, uint32(len(v)/2))
		for _, e := range v {
			var k bool
			b, k = encodeAny(b, e)
			ok = ok && k
		}
	default:
		return b, false
	}
	return b, ok
}

func equalAny(a, b any) bool {
	switch a := a.(type) {
	case []byte:
		bb, ok := b.([]byte)
		return ok && bytes.Equal(a, bb)
	case float64:
		bf, ok := b.(float64)
		return ok && (a == bf || math.IsNaN(a) && math.IsNaN(bf))
	case []any:
		bb, ok := b.([]any)
		if !ok || len(a) != len(bb) {
			return false
		}
		for i := range a {
			if !equalAny(a[i], bb[i]) {
				return false
			}
		}
		return true
	case mapValue:
		bb, ok := b.(mapValue)
		return ok && equalAny([]any(a), []any(bb))
	}
	return a == b
}

// FuzzSkip checks that Skip and a full decode agree on the error and on the
// number of bytes consumed, and that errors consume nothing.
func FuzzSkip(f *testing.F) {
	f.Add(sample())
	f.Add([]byte{0xc1})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add(bytes.Repeat([]byte{0x91}, 70))
	f.Fuzz(func(t *testing.T, in []byte) {
		rest, err := Skip(in)
		_, drest, derr := decodeAny(in, 0)
		if err != derr {
			t.Fatalf("Skip err %v, decode err %v", err, derr)
		}
		if len(rest) != len(drest) {
			t.Fatalf("Skip left %d, decode left %d", len(rest), len(drest))
		}
		if err != nil && len(rest) != len(in) {
			t.Fatalf("Skip consumed %d bytes on error %v", len(in)-len(rest), err)
		}
		if err == nil {
			// Every proper prefix of a complete value is short, and
			// MinSize is exact on the value and a bound below its size
			// (and above the prefix) on every prefix.
			n := len(in) - len(rest)
			if m := MinSize(in[:n]); m != uint64(n) {
				t.Fatalf("MinSize of a complete %d-byte value = %d", n, m)
			}
			for _, i := range []int{0, n / 2, n - 1} {
				if _, err := Skip(in[:i]); err != ErrShort {
					t.Fatalf("prefix %d of %d: %v", i, n, err)
				}
				if m := MinSize(in[:i]); m > uint64(n) || m <= uint64(i) {
					t.Fatalf("MinSize of prefix %d of a %d-byte value = %d", i, n, m)
				}
			}
		}
	})
}

// FuzzRoundTrip decodes, re-encodes in canonical old-spec form, decodes
// again and checks the values match and the canonical form is stable.
func FuzzRoundTrip(f *testing.F) {
	f.Add(sample())
	f.Add(AppendRaw(nil, bytes.Repeat([]byte{1}, 300)))
	f.Add([]byte{0xd9, 0x01, 0x41})
	f.Fuzz(func(t *testing.T, in []byte) {
		v, _, err := decodeAny(in, 0)
		if err != nil {
			return
		}
		enc, ok := encodeAny(nil, v)
		if !ok {
			return // contains ext
		}
		v2, rest, err := decodeAny(enc, 0)
		if err != nil || len(rest) != 0 {
			t.Fatalf("re-decode: %v, %d left", err, len(rest))
		}
		if !equalAny(v, v2) {
			t.Fatalf("round trip changed value: %#v -> %#v", v, v2)
		}
		enc2, _ := encodeAny(nil, v2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("canonical encoding not stable: %x vs %x", enc, enc2)
		}
		if err := checkOldSpec(enc); err != "" {
			t.Fatal(err)
		}
	})
}

// checkOldSpec walks an encoding and reports any new-spec format byte.
func checkOldSpec(b []byte) string {
	for len(b) > 0 {
		c := b[0]
		switch {
		case c == mStr8, c >= mBin8 && c <= mExt32, c >= mFixext1 && c <= mFixext16:
			return "emitted new-spec format byte"
		}
		switch NextType(b) {
		case ArrayType:
			_, b, _ = ReadArrayHeader(b)
		case MapType:
			_, b, _ = ReadMapHeader(b)
		default:
			b, _ = Skip(b)
		}
	}
	return ""
}
