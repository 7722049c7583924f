package memcache

import (
	"strconv"
	"testing"
)

func init() {
	// Fixed CPU times keep stats replies reproducible, as the fixed clock
	// does (the fuzz targets compare replies of two runs).
	cpuTimes = func() (int64, int64, bool) { return 1000200, 300, true }
}

func TestParseCNumbers(t *testing.T) {
	tests := []struct {
		in    string
		u     uint64
		uok   bool
		i32   int64
		i32ok bool
	}{
		{"5", 5, true, 5, true},
		{"+5", 5, true, 5, true},
		{"-5", 0, false, -5, true},
		{"-0", 0, true, 0, true},
		{"\t5", 5, true, 5, true},
		{"5\t", 5, true, 5, true},
		{"5\tx", 5, true, 5, true}, // strtoul stops at white space; memcached looks no further
		{"5x", 0, false, 0, false},
		{"", 0, false, 0, false},
		{"+", 0, false, 0, false},
		{"++5", 0, false, 0, false},
		{"+-5", 0, false, 0, false},
		{"0x10", 0, false, 0, false},
		{"007", 7, true, 7, true},
		{"18446744073709551615", 1<<64 - 1, true, -1, false},
		{"18446744073709551616", 0, false, 0, false},
		{"-18446744073709551615", 1, true, 0, false},        // C wraps the negation
		{"-9223372036854775808", 0, false, 0, true},         // int32 of -2^63 is 0
		{"-9223372036854775809", 1<<63 - 1, true, 0, false}, // as memcached: incr by it adds 2^63-1
		{"9223372036854775807", 1<<63 - 1, true, -1, true},
		{"9223372036854775808", 1 << 63, true, 0, false},
		{"2147483647", 2147483647, true, 2147483647, true},
		{"2147483648", 2147483648, true, -2147483648, true},
		{"-2147483649", 0, false, 2147483647, true},
		{"4294967396", 4294967396, true, 100, true},
		{"-4294967296", 0, false, 0, true},
	}
	for _, tt := range tests {
		u, uok := parseCUint([]byte(tt.in))
		if u != tt.u || uok != tt.uok {
			t.Errorf("parseCUint(%q) = %d, %v; want %d, %v", tt.in, u, uok, tt.u, tt.uok)
		}
		i, iok := parseCInt32([]byte(tt.in))
		if iok != tt.i32ok || (iok && i != tt.i32) {
			t.Errorf("parseCInt32(%q) = %d, %v; want %d, %v", tt.in, i, iok, tt.i32, tt.i32ok)
		}
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		us   int64
		want string
	}{{0, "0.000000"}, {42, "0.000042"}, {1000200, "1.000200"}, {37196544, "37.196544"}} {
		if got := seconds(tc.us); got != tc.want {
			t.Errorf("seconds(%d) = %q, want %q", tc.us, got, tc.want)
		}
	}
}

// TestPrefixStatsBounded: past maxPrefixes new prefixes are not counted,
// known ones still are, and nothing is counted while detail is off.
func TestPrefixStatsBounded(t *testing.T) {
	var p prefixStats
	p.note([]byte("off:1"), detailSet)
	p.on.Store(true)
	for i := range maxPrefixes + 10 {
		p.note([]byte(strconv.Itoa(i)+":k"), detailGet)
	}
	p.note([]byte("0:k"), detailHit)
	p.note([]byte("nodelimiter"), detailSet)
	p.note([]byte("nul\x00:k"), detailSet)
	if n := len(p.m); n != maxPrefixes {
		t.Fatalf("%d prefixes kept, want %d", n, maxPrefixes)
	}
	if c := p.m["0"]; c == nil || *c != (prefixCount{get: 2, hit: 1}) {
		t.Fatalf("prefix 0: %+v, want get 2 hit 1", c)
	}
	if p.m[strconv.Itoa(maxPrefixes)] != nil || p.m["off"] != nil || p.m["nul\x00"] != nil {
		t.Fatal("counted a prefix past the bound, while off, or with a NUL")
	}
	p.reset()
	if got := string(p.dump(nil)); got != "END\r\n" {
		t.Fatalf("dump after reset: %q", got)
	}
}
