package memcache

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"testing"
	"time"
)

// TestParseLoopReq: the loop takes only well-formed lone gets and sets in
// their plain spelling; everything else is left to the ordinary code.
func TestParseLoopReq(t *testing.T) {
	s := &Server{MaxItemSize: 1024, Now: func() time.Time { return time.Unix(1000, 0) }}
	cases := []struct {
		in      string
		kind, n int
		key     string
	}{
		{"get k\r\n", reqGet, 7, "k"},
		{"gets k\r\n", reqGet, 8, "k"},
		{"get k\r\nget j\r\n", reqGet, 7, "k"}, // the loop then sees n < input: pipelined
		{"set k 1 2 3\r\nabc\r\n", reqSet, 18, "k"},
		{"set k 1 2 3 noreply\r\nabc\r\n", reqSet, 26, "k"},
		{"set k 0 0 0\r\n\r\n", reqSet, 15, "k"},
		{"", reqIncomplete, 0, ""},
		{"g", reqIncomplete, 0, ""},
		{"gets", reqIncomplete, 0, ""},
		{"get k", reqIncomplete, 0, ""},
		{"get k\r", reqIncomplete, 0, ""},
		{"set k 1 2 3\r\nab", reqIncomplete, 0, ""},
		{"set k 1 2 3\r\nabc\r", reqIncomplete, 0, ""},
		{"get k\n", reqGet, 6, "k"}, // a bare \n ends a line too
		{"set k 1 2 3\nabc\r\n", reqSet, 17, "k"},
		{"set k 1 2 3\nabc\n", reqIncomplete, 0, ""}, // two more bytes to come
		{"set k 1 2 3\nabc\nX", reqOther, 0, ""},     // the data block needs \r\n
		{"get \n", reqOther, 0, ""},
		{"get k\r\r\n", reqOther, 0, ""},      // \r in the key
		{"get  k\r\n", reqOther, 0, ""},       // two spaces
		{"get k \r\n", reqOther, 0, ""},       // trailing space
		{"get a b\r\n", reqOther, 0, ""},      // multi-key
		{"get \r\n", reqOther, 0, ""},         // no key
		{"get k\x01\r\n", reqGet, 8, "k\x01"}, // control bytes are key bytes, as in memcached
		{"get k\xc3\xa9\r\n", reqGet, 9, "k\xc3\xa9"},
		{"GET k\r\n", reqOther, 0, ""},                // memcached is case sensitive
		{"gat 0 k\r\n", reqOther, 0, ""},              // touch
		{"stats\r\n", reqOther, 0, ""},                // any other command, at once
		{"\x80\x00\x00\x00", reqIncomplete, 0, ""},    // a binary header still arriving
		{"set k 1 2\r\n", reqOther, 0, ""},            // too few arguments
		{"set k 1 2 3 4\r\nabc\r\n", reqOther, 0, ""}, // not noreply
		{"set k 1 2 3 noreply x\r\nabc\r\n", reqOther, 0, ""},
		{"set k -1 2 3\r\nabc\r\n", reqOther, 0, ""},
		{"set k 1 -2 3\r\nabc\r\n", reqOther, 0, ""}, // negative exptime
		{"set k 1 2 +3\r\nabc\r\n", reqOther, 0, ""},
		{"set k 1234567890 2 3\r\nabc\r\n", reqOther, 0, ""}, // 10 digits
		{"set k 1 2 3\r\nabcd\r\n", reqOther, 0, ""},         // bad data chunk
		{"set k 1 2 3\r\nabc\n\n", reqOther, 0, ""},
		{"set k 1 2 1000\r\n", reqOther, 0, ""}, // over MaxItemSize with key and overhead
		{"set k 1 2 3 \r\nabc\r\n", reqOther, 0, ""},
		{"set k 1 2 3\r\n" + string(bytes.Repeat([]byte("x"), 3)) + "\r\n", reqSet, 18, "k"},
		{"get " + string(bytes.Repeat([]byte("k"), 250)) + "\r\n", reqGet, 256, string(bytes.Repeat([]byte("k"), 250))},
		{"get " + string(bytes.Repeat([]byte("k"), 251)) + "\r\n", reqOther, 0, ""},
		{"get " + string(bytes.Repeat([]byte("k"), 3000)), reqOther, 0, ""}, // a line too long to wait for
	}
	for _, tc := range cases {
		r := parseLoopReq([]byte(tc.in), s)
		if r.kind != tc.kind || r.n != tc.n || string(r.key) != tc.key && r.kind == reqGet {
			t.Errorf("%q: kind %d n %d key %q; want %d %d %q", tc.in, r.kind, r.n, r.key, tc.kind, tc.n, tc.key)
		}
	}
	r := parseLoopReq([]byte("set k 7 20 3 noreply\r\nabc\r\n"), s)
	it := r.it
	if string(it.Key) != "k" || string(it.Value) != "abc" || it.Flags != 7 || it.Exptime != 1020 || !r.noreply {
		t.Errorf("set item %+v noreply %v", it, r.noreply)
	}
	if r := parseLoopReq([]byte("set k 7 0 3\r\nabc\r\n"), s); r.it.Exptime != 0 || r.noreply {
		t.Errorf("set item %+v noreply %v", r.it, r.noreply)
	}
}

// TestParseLoopBin: binary GET, GETK and SET are taken; quiet forms, a set
// with a CAS and malformed packets are not.
func TestParseLoopBin(t *testing.T) {
	s := &Server{MaxItemSize: 1024, Now: func() time.Time { return time.Unix(1000, 0) }}
	pkt := func(op byte, key, extras, value string, cas uint64) string {
		h := make([]byte, 24)
		h[0], h[1] = 0x80, op
		binary.BigEndian.PutUint16(h[2:], uint16(len(key)))
		h[4] = byte(len(extras))
		binary.BigEndian.PutUint32(h[8:], uint32(len(extras)+len(key)+len(value)))
		binary.BigEndian.PutUint32(h[12:], 77)
		binary.BigEndian.PutUint64(h[16:], cas)
		return string(h) + extras + key + value
	}
	ext := "\x00\x00\x00\x05\x00\x00\x00\x0a" // flags 5, exptime 10
	cases := []struct {
		in      string
		kind, n int
	}{
		{pkt(opGet, "k", "", "", 0), reqGet, 25},
		{pkt(opGetK, "key", "", "", 9), reqGet, 27},
		{pkt(opSet, "k", ext, "abc", 0), reqSet, 36},
		{pkt(opSet, "k", ext, "abc", 0)[:30], reqIncomplete, 0},
		{pkt(opGetQ, "k", "", "", 0), reqOther, 0},
		{pkt(opSetQ, "k", ext, "abc", 0), reqOther, 0},
		{pkt(opSet, "k", ext, "abc", 7), reqOther, 0}, // a CAS: the ordinary code
		{pkt(opSet, "k", "", "abc", 0), reqOther, 0},  // no extras
		{pkt(opGet, "k", "x", "", 0), reqOther, 0},    // extras on a get
		{pkt(opGet, "", "", "", 0), reqOther, 0},
		{pkt(opSet, "k", ext, string(make([]byte, 1000)), 0), reqOther, 0}, // over MaxItemSize
		{pkt(0x10, "", "", "", 0), reqOther, 0},                            // stat
	}
	for i, tc := range cases {
		r := parseLoopReq([]byte(tc.in), s)
		if r.kind != tc.kind || r.n != tc.n || (r.kind == reqGet || r.kind == reqSet) && (!r.binary || r.opaque != 77) {
			t.Errorf("case %d: kind %d n %d binary %v opaque %d; want %d %d", i, r.kind, r.n, r.binary, r.opaque, tc.kind, tc.n)
		}
	}
	r := parseLoopReq([]byte(pkt(opSet, "k", ext, "abc", 0)), s)
	if string(r.it.Key) != "k" || string(r.it.Value) != "abc" || r.it.Flags != 5 || r.it.Exptime != 1010 {
		t.Errorf("set item %+v", r.it)
	}
}

// TestParseLoopReqByteByByte: every proper prefix of a request the loop
// serves is incomplete, never taken for something else.
func TestParseLoopReqByteByByte(t *testing.T) {
	s := &Server{}
	for _, in := range []string{"get key\r\n", "gets key\r\n", "set key 1 2 3\r\nabc\r\n", "set key 0 0 5 noreply\r\nab\r\nc\r\n"} {
		for i := 0; i < len(in); i++ {
			if r := parseLoopReq([]byte(in[:i]), s); r.kind != reqIncomplete {
				t.Errorf("%q[:%d]: kind %d, want incomplete", in, i, r.kind)
			}
		}
		if r := parseLoopReq([]byte(in), s); r.kind != reqGet && r.kind != reqSet || r.n != len(in) {
			t.Errorf("%q: kind %d n %d", in, r.kind, r.n)
		}
	}
}

// FuzzParseLoopReq: whatever the input, a request the loop takes is exactly
// the plain spelling of a get or set of what it parsed, within the input.
func FuzzParseLoopReq(f *testing.F) {
	for _, s := range []string{"get k\r\n", "gets k\r\n", "set k 1 2 3\r\nabc\r\n", "set k 1 2 3 noreply\r\nabc\r\n", "get a b\r\n", "\x80\x01", "\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00k"} {
		f.Add([]byte(s))
	}
	s := &Server{Now: func() time.Time { return time.Unix(1000, 0) }}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := parseLoopReq(b, s)
		var want []byte
		if r.binary && (r.kind == reqGet || r.kind == reqSet) {
			// The packet it took: header, extras, key (and value) exactly.
			ext := 0
			if r.kind == reqSet {
				ext = 8
			}
			if r.n > len(b) || r.n != 24+ext+len(r.key)+len(r.it.Value) || !bytes.Equal(b[24+ext:24+ext+len(r.key)], r.key) {
				t.Fatalf("%q: took %d bytes, key %q", b, r.n, r.key)
			}
			return
		}
		switch r.kind {
		case reqIncomplete, reqOther:
			return
		case reqGet:
			want = []byte("get ")
			if r.withCAS {
				want = []byte("gets ")
			}
			want = append(append(want, r.key...), "\r\n"...)
		case reqSet:
			exp := r.it.Exptime
			if exp != 0 {
				exp -= 1000
			}
			want = []byte("set " + string(r.it.Key) + " " + strconv.Itoa(int(r.it.Flags)) + " " + strconv.Itoa(int(exp)) + " " + strconv.Itoa(len(r.it.Value)))
			if r.noreply {
				want = append(want, " noreply"...)
			}
			want = append(append(append(want, "\r\n"...), r.it.Value...), "\r\n"...)
		default:
			t.Fatalf("kind %d", r.kind)
		}
		if r.n > len(b) || !bytes.Equal(normalizeNums(crlfHeader(b[:r.n])), want) {
			t.Fatalf("%q: took %q (n %d)", b, want, r.n)
		}
	})
}

// crlfHeader spells the first line end of b as "\r\n".
func crlfHeader(b []byte) []byte {
	i := bytes.IndexByte(b, '\n')
	if i < 0 || i > 0 && b[i-1] == '\r' {
		return b
	}
	return append(append(append([]byte(nil), b[:i]...), "\r\n"...), b[i+1:]...)
}

// normalizeNums drops leading zeros of the numbers on a set line, which
// the loop accepts as the ordinary parser does.
func normalizeNums(b []byte) []byte {
	if !bytes.HasPrefix(b, []byte("set ")) {
		return b
	}
	i := bytes.Index(b, []byte("\r\n"))
	f := bytes.Split(b[4:i], []byte(" "))
	out := append([]byte("set "), f[0]...)
	for _, x := range f[1:] {
		out = append(out, ' ')
		if n, err := strconv.Atoi(string(x)); err == nil {
			out = strconv.AppendInt(out, int64(n), 10)
		} else {
			out = append(out, x...)
		}
	}
	return append(out, b[i:]...)
}

func TestLoopsFor(t *testing.T) {
	for _, tc := range []struct{ procs, want int }{{1, 1}, {2, 1}, {3, 2}, {4, 2}, {8, 4}, {0, 1}} {
		if got := loopsFor(tc.procs); got != tc.want {
			t.Errorf("loopsFor(%d) = %d, want %d", tc.procs, got, tc.want)
		}
	}
}
