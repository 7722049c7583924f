package msgpack

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.txt from the encoders")

// vector is one golden encoding. want is the hand-written expected hex
// prefix (enough to pin the header); the full bytes are pinned by
// testdata/golden.txt.
type vector struct {
	name string
	enc  []byte
	want string
}

func vectors() []vector {
	raw := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	return []vector{
		{"nil", AppendNil(nil), "c0"},
		{"false", AppendBool(nil, false), "c2"},
		{"true", AppendBool(nil, true), "c3"},
		{"int 0", AppendInt(nil, 0), "00"},
		{"int 1", AppendInt(nil, 1), "01"},
		{"int 127", AppendInt(nil, 127), "7f"},
		{"int 128", AppendInt(nil, 128), "cc80"},
		{"int 255", AppendInt(nil, 255), "ccff"},
		{"int 256", AppendInt(nil, 256), "cd0100"},
		{"int 65535", AppendInt(nil, 65535), "cdffff"},
		{"int 65536", AppendInt(nil, 65536), "ce00010000"},
		{"int 4294967295", AppendInt(nil, math.MaxUint32), "ceffffffff"},
		{"int 4294967296", AppendInt(nil, math.MaxUint32+1), "cf0000000100000000"},
		{"int maxint64", AppendInt(nil, math.MaxInt64), "cf7fffffffffffffff"},
		{"int -1", AppendInt(nil, -1), "ff"},
		{"int -32", AppendInt(nil, -32), "e0"},
		{"int -33", AppendInt(nil, -33), "d0df"},
		{"int -128", AppendInt(nil, -128), "d080"},
		{"int -129", AppendInt(nil, -129), "d1ff7f"},
		{"int -32768", AppendInt(nil, -32768), "d18000"},
		{"int -32769", AppendInt(nil, -32769), "d2ffff7fff"},
		{"int -2147483648", AppendInt(nil, math.MinInt32), "d280000000"},
		{"int -2147483649", AppendInt(nil, math.MinInt32-1), "d3ffffffff7fffffff"},
		{"int minint64", AppendInt(nil, math.MinInt64), "d38000000000000000"},
		{"uint 127", AppendUint(nil, 127), "7f"},
		{"uint 128", AppendUint(nil, 128), "cc80"},
		{"uint maxuint64", AppendUint(nil, math.MaxUint64), "cfffffffffffffffff"},
		{"float64 1.5", AppendFloat64(nil, 1.5), "cb3ff8000000000000"},
		{"float64 -0", AppendFloat64(nil, math.Copysign(0, -1)), "cb8000000000000000"},
		{"raw 0", AppendRaw(nil, nil), "a0"},
		{"raw 1", AppendRaw(nil, []byte{0}), "a100"},
		{"raw 31", AppendRaw(nil, raw(31)), "bf78"},
		{"raw 32", AppendRaw(nil, raw(32)), "da002078"},
		{"raw 255", AppendRaw(nil, raw(255)), "da00ff78"},
		{"raw 256", AppendRaw(nil, raw(256)), "da010078"},
		{"raw 65535", AppendRaw(nil, raw(65535)), "daffff78"},
		{"raw 65536", AppendRaw(nil, raw(65536)), "db0001000078"},
		{"string 32", AppendString(nil, strings.Repeat("x", 32)), "da002078"},
		{"array 0", AppendArrayHeader(nil, 0), "90"},
		{"array 15", AppendArrayHeader(nil, 15), "9f"},
		{"array 16", AppendArrayHeader(nil, 16), "dc0010"},
		{"array 65535", AppendArrayHeader(nil, 65535), "dcffff"},
		{"array 65536", AppendArrayHeader(nil, 65536), "dd00010000"},
		{"map 0", AppendMapHeader(nil, 0), "80"},
		{"map 15", AppendMapHeader(nil, 15), "8f"},
		{"map 16", AppendMapHeader(nil, 16), "de0010"},
		{"map 65536", AppendMapHeader(nil, 65536), "df00010000"},
	}
}

func TestGoldenVectors(t *testing.T) {
	var golden strings.Builder
	for _, v := range vectors() {
		got := hex.EncodeToString(v.enc)
		if !strings.HasPrefix(got, v.want) {
			t.Errorf("%s: encoded %.40s…, want prefix %s", v.name, got, v.want)
		}
		if len(v.enc) > 64 {
			got = fmt.Sprintf("%s…(%d bytes)", hex.EncodeToString(v.enc[:8]), len(v.enc))
		}
		fmt.Fprintf(&golden, "%s: %s\n", v.name, got)
	}
	const path = "testdata/golden.txt"
	if *update {
		if err := os.WriteFile(path, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != golden.String() {
		t.Errorf("encodings differ from %s:\n%s", path, golden.String())
	}
}

// TestVectorsDecode decodes every golden vector with the matching reader
// and checks the value and that nothing is left over.
func TestVectorsDecode(t *testing.T) {
	for _, v := range vectors() {
		b := v.enc
		var rest []byte
		var err error
		var got any
		switch NextType(b) {
		case NilType:
			rest, err = ReadNil(b)
		case BoolType:
			got, rest, err = ReadBool(b)
		case IntType:
			if strings.HasPrefix(v.name, "uint") {
				got, rest, err = ReadUint(b)
			} else {
				got, rest, err = ReadInt(b)
			}
		case FloatType:
			got, rest, err = ReadFloat64(b)
		case RawType:
			var p []byte
			p, rest, err = ReadRaw(b)
			got = len(p)
		case ArrayType:
			got, rest, err = ReadArrayHeader(append(b, make([]byte, 1<<17)...))
			rest = rest[:len(rest)-1<<17]
		case MapType:
			got, rest, err = ReadMapHeader(append(b, make([]byte, 1<<18)...))
			rest = rest[:len(rest)-1<<18]
		}
		if err != nil || len(rest) != 0 {
			t.Errorf("%s: err %v, %d bytes left", v.name, err, len(rest))
			continue
		}
		if w := lastWord(v.name); got != nil && !knownName(w) && fmt.Sprint(got) != w {
			t.Errorf("%s: decoded %v", v.name, got)
		}
	}
}

func lastWord(s string) string { return s[strings.LastIndexByte(s, ' ')+1:] }

// knownName lists symbolic names in vectors() whose value is not spelled out.
func knownName(w string) bool {
	switch w {
	case "maxint64", "minint64", "maxuint64", "-0", "1.5", "nil", "false", "true":
		return true
	}
	return false
}

func TestIntBoundariesRoundTrip(t *testing.T) {
	ints := []int64{0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, -1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769,
		math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	for _, i := range ints {
		b := AppendInt(nil, i)
		got, rest, err := ReadInt(b)
		if err != nil || got != i || len(rest) != 0 {
			t.Errorf("ReadInt(%x) = %d, %x, %v; want %d", b, got, rest, err, i)
		}
		u, _, err := ReadUint(b)
		if i >= 0 && (err != nil || u != uint64(i)) {
			t.Errorf("ReadUint(%x) = %d, %v", b, u, err)
		}
		if i < 0 && err != ErrRange {
			t.Errorf("ReadUint(%x) err = %v, want ErrRange", b, err)
		}
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestReadLenient(t *testing.T) {
	tests := []struct {
		in   string
		read func([]byte) (any, []byte, error)
		want any
		err  error
	}{
		{"d0 05", rInt, int64(5), nil},
		{"d3 00 00 00 00 00 00 00 07", rUint, uint64(7), nil},
		{"d1 ff ff", rUint, uint64(0), ErrRange},
		{"cf ff ff ff ff ff ff ff ff", rInt, int64(0), ErrRange},
		{"cf 80 00 00 00 00 00 00 00", rInt, int64(0), ErrRange},
		{"cf 7f ff ff ff ff ff ff ff", rInt, int64(math.MaxInt64), nil},
		{"cf 00 00 00 01 00 00 00 00", rUint32, uint32(0), ErrRange},
		{"ce ff ff ff ff", rUint32, uint32(math.MaxUint32), nil},
		{"ca 3f c0 00 00", rFloat, 1.5, nil},
		{"d9 03 61 62 63", rRaw, "abc", nil},
		{"c4 02 00 01", rRaw, "\x00\x01", nil},
		{"c5 00 01 ff", rRaw, "\xff", nil},
		{"c6 00 00 00 01 41", rRaw, "A", nil},
		{"db 00 00 00 02 41 42", rRaw, "AB", nil},
		{"a2 ff fe", rRaw, "\xff\xfe", nil}, // not UTF-8, still fine
		{"01", rRaw, "", &TypeError{Want: RawType, Got: IntType}},
		{"c0", rRaw, "", &TypeError{Want: RawType, Got: NilType}},
		{"a0", rInt, int64(0), &TypeError{Want: IntType, Got: RawType}},
		{"c1", rInt, int64(0), ErrInvalid},
		{"c1", rRaw, "", ErrInvalid},
		{"c7 01 05 00", rRaw, "", &TypeError{Want: RawType, Got: ExtType}},
		{"c3", rInt, int64(0), &TypeError{Want: IntType, Got: BoolType}},
		{"cb 00", rFloat, 0.0, ErrShort},
		// length bombs: declared sizes beyond the input are "short", no allocation.
		{"db ff ff ff ff 00", rRaw, "", ErrShort},
		{"dd ff ff ff ff 00 00", rArr, uint32(0), ErrShort},
		{"df ff ff ff ff 00 00", rMap, uint32(0), ErrShort},
		{"82 01 02 03", rMap, uint32(0), ErrShort},
		{"82 01 02 03 04", rMap, uint32(2), nil},
		{"dc 00 02 01 02", rArr, uint32(2), nil},
	}
	for _, tt := range tests {
		in := mustHex(tt.in)
		got, rest, err := tt.read(in)
		if !errEqual(err, tt.err) {
			t.Errorf("%s: err = %v, want %v", tt.in, err, tt.err)
			continue
		}
		if err != nil {
			if !bytes.Equal(rest, in) {
				t.Errorf("%s: consumed input on error", tt.in)
			}
			continue
		}
		if p, ok := got.([]byte); ok {
			got = string(p)
		}
		if got != tt.want {
			t.Errorf("%s: got %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func errEqual(a, b error) bool {
	var ta, tb *TypeError
	if errors.As(a, &ta) && errors.As(b, &tb) {
		return *ta == *tb
	}
	return a == b
}

func rInt(b []byte) (any, []byte, error)   { v, r, e := ReadInt(b); return v, r, e }
func rUint(b []byte) (any, []byte, error)  { v, r, e := ReadUint(b); return v, r, e }
func rFloat(b []byte) (any, []byte, error) { v, r, e := ReadFloat64(b); return v, r, e }
func rRaw(b []byte) (any, []byte, error)   { v, r, e := ReadRaw(b); return v, r, e }
func rArr(b []byte) (any, []byte, error)   { v, r, e := ReadArrayHeader(b); return v, r, e }
func rMap(b []byte) (any, []byte, error)   { v, r, e := ReadMapHeader(b); return v, r, e }
func rUint32(b []byte) (any, []byte, error) {
	v, r, e := ReadUint32(b)
	return v, r, e
}

func TestNilVersusEmptyRaw(t *testing.T) {
	v, isNil, rest, err := ReadRawOrNil([]byte{0xc0, 0xa0})
	if err != nil || !isNil || v != nil {
		t.Fatalf("nil: %v %v %v", v, isNil, err)
	}
	v, isNil, rest, err = ReadRawOrNil(rest)
	if err != nil || isNil || v == nil || len(v) != 0 || len(rest) != 0 {
		t.Fatalf("empty raw: %v %v %v", v, isNil, err)
	}
	if !IsNil([]byte{0xc0}) || IsNil(nil) || IsNil([]byte{0xa0}) {
		t.Fatal("IsNil")
	}
}

// sample is a message touching every format, including the new-spec ones
// that are accepted on input.
func sample() []byte {
	b := AppendArrayHeader(nil, 4)
	b = AppendUint(b, 0)
	b = AppendUint(b, 70000)
	b = AppendUint(b, 35)
	b = AppendArrayHeader(b, 12)
	b = AppendRaw(b, bytes.Repeat([]byte{7}, 40))
	b = AppendInt(b, -200)
	b = AppendNil(b)
	b = AppendBool(b, true)
	b = AppendFloat64(b, 2.25)
	b = AppendMapHeader(b, 1)
	b = AppendString(b, "k")
	b = AppendArrayHeader(b, 0)
	b = append(b, mustHex("ca 3f c0 00 00")...)          // float32
	b = append(b, mustHex("d9 02 68 69")...)             // str8
	b = append(b, mustHex("c4 01 00")...)                // bin8
	b = append(b, mustHex("d6 01 00 00 00 00")...)       // fixext4
	b = append(b, mustHex("c8 00 02 05 aa bb")...)       // ext16
	b = append(b, mustHex("dc 00 01 de 00 01 01 02")...) // array16{map16}
	return b
}

// TestEveryPrefixShort decodes every proper prefix of a valid message and
// expects ErrShort with nothing consumed, and the whole message to succeed.
func TestEveryPrefixShort(t *testing.T) {
	msg := sample()
	for i := 0; i < len(msg); i++ {
		p := msg[:i]
		if rest, err := Skip(p); err != ErrShort || len(rest) != i {
			t.Fatalf("Skip(prefix %d/%d) = %d left, %v; want ErrShort", i, len(msg), len(rest), err)
		}
		if _, rest, err := decodeAny(p, 0); err != ErrShort || len(rest) != i {
			t.Fatalf("decodeAny(prefix %d/%d) = %v; want ErrShort", i, len(msg), err)
		}
	}
	rest, err := Skip(msg)
	if err != nil || len(rest) != 0 {
		t.Fatalf("Skip(full) = %d left, %v", len(rest), err)
	}
	// Prefixes of each single-value vector, read with the typed readers.
	for _, v := range vectors() {
		for i := 0; i < len(v.enc) && i < 70; i++ {
			if _, err := Skip(v.enc[:i]); err != ErrShort {
				t.Fatalf("%s prefix %d: Skip err %v", v.name, i, err)
			}
			if _, _, err := decodeAny(v.enc[:i], 0); err != ErrShort {
				t.Fatalf("%s prefix %d: decode err %v", v.name, i, err)
			}
		}
	}
}

func TestSkipDepth(t *testing.T) {
	deep := func(n int) []byte {
		b := bytes.Repeat([]byte{0x91}, n)
		return append(b, 0x01)
	}
	if rest, err := Skip(deep(MaxDepth)); err != nil || len(rest) != 0 {
		t.Fatalf("depth MaxDepth: %v", err)
	}
	in := deep(MaxDepth + 1)
	if rest, err := Skip(in); err != ErrTooDeep || len(rest) != len(in) {
		t.Fatalf("depth MaxDepth+1: %v", err)
	}
	if _, err := Skip(bytes.Repeat([]byte{0x91}, 1<<20)); err != ErrShort && err != ErrTooDeep {
		t.Fatalf("1M nested headers: %v", err)
	}
	if _, err := Skip(append(bytes.Repeat([]byte{0x91}, 1<<20), 0)); err != ErrTooDeep {
		t.Fatalf("1M nested arrays: %v", err)
	}
}

func TestSkipInvalid(t *testing.T) {
	for _, in := range []string{"c1", "92 01 c1", "81 c1 01"} {
		b := mustHex(in)
		if rest, err := Skip(b); err != ErrInvalid || len(rest) != len(b) {
			t.Errorf("Skip(%s) = %v, want ErrInvalid", in, err)
		}
	}
}

// TestStreamOneByte feeds a stream of messages through readers that return
// one byte (or half the bytes) at a time and frames it with Skip, the way
// proto/rpc does.
func TestStreamOneByte(t *testing.T) {
	var stream []byte
	const count = 20
	for range count {
		stream = append(stream, sample()...)
	}
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"OneByte": iotest.OneByteReader,
		"Half":    iotest.HalfReader,
		"Data":    iotest.DataErrReader,
	} {
		r := bufio.NewReaderSize(wrap(bytes.NewReader(stream)), 16)
		var buf []byte
		got := 0
		for {
			if len(buf) > 0 {
				rest, err := Skip(buf)
				if err == nil {
					if !bytes.Equal(buf[:len(buf)-len(rest)], sample()) {
						t.Fatalf("%s: frame %d differs", name, got)
					}
					got++
					buf = rest
					continue
				}
				if err != ErrShort {
					t.Fatalf("%s: %v", name, err)
				}
			}
			c, err := r.ReadByte()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			buf = append(buf, c)
		}
		if got != count || len(buf) != 0 {
			t.Fatalf("%s: %d frames, %d bytes left", name, got, len(buf))
		}
	}
}

func TestNextType(t *testing.T) {
	for in, want := range map[string]Type{
		"": InvalidType, "c1": InvalidType, "c0": NilType, "c2": BoolType, "7f": IntType, "e0": IntType,
		"d3": IntType, "cc": IntType, "ca": FloatType, "cb": FloatType, "a0": RawType, "d9": RawType,
		"c4": RawType, "db": RawType, "90": ArrayType, "dd": ArrayType, "80": MapType, "df": MapType,
		"d4": ExtType, "c9": ExtType,
	} {
		if got := NextType(mustHex(in)); got != want {
			t.Errorf("NextType(%s) = %v, want %v", in, got, want)
		}
	}
}

func TestErrorStrings(t *testing.T) {
	if s := (&TypeError{Want: RawType, Got: IntType}).Error(); s != "msgpack: want raw, got int" {
		t.Fatal(s)
	}
}

func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	key := []byte("some key")
	n := testing.AllocsPerRun(100, func() {
		b := AppendArrayHeader(buf[:0], 4)
		b = AppendUint(b, 0)
		b = AppendUint(b, 12345)
		b = AppendRaw(b, key)
		b = AppendInt(b, -7)
		_, b, _ = ReadArrayHeader(b)
		_, _ = Skip(b)
	})
	if n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func TestMinSize(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want uint64
	}{
		{"empty", nil, 1},
		{"fixint", []byte{0x05}, 1},
		{"uint32 cut", []byte{0xce, 0x00}, 5},
		{"str8 header only", []byte{0xd9, 0x10}, 2 + 16},
		{"bin32 declares 2 GiB", []byte{0xc6, 0x7f, 0xff, 0xff, 0xf0}, 5 + 0x7ffffff0},
		{"request with a 2 GiB raw", []byte{0x94, 0x00, 0x01, 0x22, 0x91, 0xc6, 0x7f, 0xff, 0xff, 0xf0}, 4 + 1 + 5 + 0x7ffffff0},
		{"array of 3, one present", []byte{0x93, 0x01}, 4},
		{"array32 header cut", []byte{0xdd, 0x00}, 3},
		{"complete array", []byte{0x92, 0x01, 0xa1, 'x'}, 4},
		{"map, value missing", []byte{0x81, 0xa1, 'k'}, 4},
		{"invalid byte", []byte{0xc1}, 2},
	}
	for _, tt := range tests {
		if got := MinSize(tt.in); got != tt.want {
			t.Errorf("%s: MinSize(% x) = %d, want %d", tt.name, tt.in, got, tt.want)
		}
	}
}
