package memcache_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// binMget is a binary multi-get as libmemcached sends it: a GETKQ per key
// (opaque i) and a NOOP.
func binMget(keys ...string) string {
	var b strings.Builder
	for i, k := range keys {
		b.WriteString(binReq(0x0d, k, "", "", uint32(i), 0))
	}
	b.WriteString(binReq(0x0a, "", "", "", uint32(len(keys)), 0))
	return b.String()
}

// binWindowScripts are binary inputs whose runs of gets are served in
// windows.
var binWindowScripts = map[string]string{
	"mget": func() string {
		var b strings.Builder
		var keys []string
		for i := range 20 {
			k := fmt.Sprintf("k%d", i)
			b.WriteString(binReq(0x01, k, setExtras(uint32(i), 0), strings.Repeat("v", i), uint32(100+i), 0))
			keys = append(keys, k, "miss"+k)
		}
		keys = append(keys, "k3", "k3") // twice in one window
		b.WriteString(binMget(keys...))
		return b.String()
	}(),
	"every get op": cat(binReq(0x01, "a", setExtras(7, 0), "A", 1, 0),
		binReq(0x00, "a", "", "", 2, 0), binReq(0x00, "b", "", "", 3, 0), binReq(0x09, "a", "", "", 4, 0),
		binReq(0x09, "b", "", "", 5, 0), binReq(0x0c, "a", "", "", 6, 0), binReq(0x0c, "b", "", "", 7, 0),
		binReq(0x0d, "a", "", "", 8, 0), binReq(0x0d, "b", "", "", 9, 0), binReq(0x0a, "", "", "", 10, 0)),
	"a set ends the window": cat(binReq(0x0d, "a", "", "", 1, 0), binReq(0x0d, "b", "", "", 2, 0),
		binReq(0x01, "a", setExtras(1, 0), "new", 3, 0), binReq(0x0d, "a", "", "", 4, 0), binReq(0x0d, "b", "", "", 5, 0),
		binReq(0x04, "a", "", "", 6, 0), binReq(0x0c, "a", "", "", 7, 0), binReq(0x0c, "a", "", "", 8, 0)),
	"touch and gat are not windowed": cat(binReq(0x01, "a", setExtras(2, 0), "x", 1, 0),
		binReq(0x0d, "a", "", "", 2, 0), binReq(0x1d, "a", be32(100), "", 3, 0), binReq(0x0d, "a", "", "", 4, 0),
		binReq(0x1c, "a", be32(100), "", 5, 0), binReq(0x0d, "a", "", "", 6, 0), binReq(0x0a, "", "", "", 7, 0)),
	"malformed get in a run": cat(binReq(0x01, "a", setExtras(0, 0), "x", 1, 0),
		binReq(0x0d, "a", "", "", 2, 0), binReq(0x0d, "a", "", "", 3, 0), binReq(0x0d, "a", "xx", "", 4, 0),
		binReq(0x0d, "a", "", "", 5, 0)),
	"get with a body in a run": cat(binReq(0x01, "a", setExtras(0, 0), "x", 1, 0),
		binReq(0x0d, "a", "", "", 2, 0), binReq(0x0d, "a", "", "v", 3, 0), binReq(0x0d, "a", "", "", 4, 0)),
	"bulk setq": func() string {
		var b strings.Builder
		for i := range 40 {
			b.WriteString(binReq(0x11, fmt.Sprintf("s%d", i), setExtras(uint32(i), uint32(i%3)), strings.Repeat("w", i%9), uint32(i), 0))
		}
		b.WriteString(binReq(0x0a, "", "", "", 40, 0))
		b.WriteString(binMget("s0", "s7", "s39", "s40"))
		return b.String()
	}(),
	"sets and gets of one key": cat(binReq(0x11, "a", setExtras(1, 0), "1", 1, 0), binReq(0x11, "a", setExtras(2, 0), "2", 2, 0),
		binReq(0x0c, "a", "", "", 3, 0), binReq(0x01, "a", setExtras(3, 0), "3", 4, 0), binReq(0x0c, "a", "", "", 5, 0),
		binReq(0x0d, "b", "", "", 6, 0), binReq(0x01, "b", setExtras(4, 0), "4", 7, 0), binReq(0x0c, "b", "", "", 8, 0)),
	"set with cas in a run": cat(binReq(0x01, "a", setExtras(0, 0), "x", 1, 0), binReq(0x01, "b", setExtras(0, 0), "y", 2, 0),
		binReq(0x01, "a", setExtras(0, 0), "z", 3, 98), binReq(0x01, "c", setExtras(0, 0), "z", 4, 0), binReq(0x01, "b", setExtras(0, 0), "z", 5, 99),
		binReq(0x0c, "a", "", "", 6, 0), binReq(0x0c, "b", "", "", 7, 0)),
	"bad sets in a run": cat(binReq(0x11, "a", setExtras(0, 0), "x", 1, 0), binReq(0x11, "big", setExtras(0, 0), strings.Repeat("x", 2000), 2, 0),
		binReq(0x11, "c", setExtras(0, 0), "x", 3, 0), binReq(0x0c, "c", "", "", 4, 0), binReq(0x11, "d", "abc", "x", 5, 0), binReq(0x11, "e", setExtras(0, 0), "x", 6, 0)),
	"bulk deleteq": func() string {
		var b strings.Builder
		for i := range 30 {
			b.WriteString(binReq(0x11, fmt.Sprintf("d%d", i), setExtras(0, 0), "v", uint32(i), 0))
		}
		for i := range 40 {
			op := byte(0x14) // DELETEQ
			if i%3 == 0 {
				op = 0x04
			}
			b.WriteString(binReq(op, fmt.Sprintf("d%d", i), "", "", uint32(100+i), 0))
		}
		b.WriteString(binMget("d0", "d29", "d30"))
		return b.String()
	}(),
	"deletes and the same key": cat(binReq(0x01, "a", setExtras(0, 0), "1", 1, 0), binReq(0x14, "a", "", "", 2, 0),
		binReq(0x0c, "a", "", "", 3, 0), binReq(0x04, "a", "", "", 4, 0), binReq(0x11, "a", setExtras(0, 0), "2", 5, 0),
		binReq(0x04, "a", "", "", 6, 0), binReq(0x04, "a", "", "", 7, 0), binReq(0x04, "b", "", "", 8, 5),
		binReq(0x04, "c", "x", "", 9, 0), binReq(0x0c, "a", "", "", 10, 0)),
	"bulk quiet stores": func() string {
		var b strings.Builder
		for i := range 20 {
			b.WriteString(binReq(0x11, fmt.Sprintf("q%d", i), setExtras(uint32(i), 0), "v", uint32(i), 0))
		}
		// ADDQ, REPLACEQ, APPENDQ, PREPENDQ and their loud forms, on
		// stored keys (q0-q19) and missing ones (m0-m19).
		ops := []byte{0x12, 0x13, 0x19, 0x1a, 0x02, 0x03, 0x0e, 0x0f}
		for i := range 40 {
			op := ops[i%len(ops)]
			key := fmt.Sprintf("q%d", i/2)
			if i%2 == 1 {
				key = fmt.Sprintf("m%d", i/2)
			}
			ext := setExtras(uint32(100+i), 0)
			if op == 0x19 || op == 0x1a || op == 0x0e || op == 0x0f {
				ext = ""
			}
			b.WriteString(binReq(op, key, ext, fmt.Sprintf("<%d>", i), uint32(100+i), 0))
		}
		b.WriteString(binReq(0x0a, "", "", "", 200, 0))
		var keys []string
		for i := range 20 {
			keys = append(keys, fmt.Sprintf("q%d", i), fmt.Sprintf("m%d", i))
		}
		b.WriteString(binMget(keys...))
		return b.String()
	}(),
	"stores of one key in a run": cat(binReq(0x12, "a", setExtras(1, 0), "1", 1, 0), binReq(0x19, "a", "", "2", 2, 0),
		binReq(0x1a, "a", "", "0", 3, 0), binReq(0x13, "b", setExtras(2, 0), "x", 4, 0), binReq(0x12, "b", setExtras(3, 0), "y", 5, 0),
		binReq(0x13, "b", setExtras(4, 0), "z", 6, 0), binReq(0x0c, "a", "", "", 7, 0), binReq(0x0c, "b", "", "", 8, 0)),
	"bad stores in a run": cat(binReq(0x12, "a", setExtras(0, 0), "x", 1, 0), binReq(0x19, "a2", setExtras(0, 0), "x", 2, 0),
		binReq(0x12, "c", setExtras(0, 0), "x", 3, 0), binReq(0x13, "big", setExtras(0, 0), strings.Repeat("x", 2000), 4, 0),
		binReq(0x12, "d", setExtras(0, 0), "x", 5, 0), binReq(0x12, "e", setExtras(0, 0), "x", 6, 7), binReq(0x1a, "f", "", "x", 7, 0),
		binReq(0x0c, "c", "", "", 8, 0)),
	"incomplete at the end": cat(binReq(0x01, "a", setExtras(0, 0), "x", 1, 0),
		binReq(0x0d, "a", "", "", 2, 0), binReq(0x0d, "a", "", "", 3, 0), binReq(0x0c, "abc", "", "", 4, 0)[:26]),
}

// Ensure that runs of binary gets are served in windows whose replies are
// the bytes of the one-by-one path, read whole, one byte and half a read
// at a time, with completions inline, on goroutines, failing (served again
// blocking) and refused; and that a multi-get's keys do start together.
func TestBinaryWindows(t *testing.T) {
	scripts := map[string]string{}
	for name, s := range binWindowScripts {
		scripts[name] = s
	}
	for _, tc := range binaryCases {
		scripts["transcript "+tc.name] = tc.req
	}
	for name, script := range scripts {
		t.Run(name, func(t *testing.T) {
			sameInEveryMode(t, script, func(mode int, s string) string {
				if mode == asyncGo || mode == asyncApplied {
					// The sets of a window complete in any order, and so
					// take their CAS uniques (asyncApplied stores each
					// twice).
					return zeroBinCAS(s)
				}
				return s
			})
		})
	}
	// Read whole, the 42 keys of the multi-get and the 40 quiet sets start
	// asynchronously.
	whole := func(r io.Reader) io.Reader { return r }
	if _, started := servePipelined(binWindowScripts["mget"], whole, asyncInline); started < 42 {
		t.Fatalf("mget: %d gets started asynchronously, want at least 42", started)
	}
	if _, started := servePipelined(binWindowScripts["bulk setq"], whole, asyncInline); started < 40 {
		t.Fatalf("bulk setq: %d requests started asynchronously, want at least 40", started)
	}
	if _, started := servePipelined(binWindowScripts["bulk deleteq"], whole, asyncInline); started < 70 {
		t.Fatalf("bulk deleteq: %d requests started asynchronously, want at least 70", started)
	}
	if _, started := servePipelined(binWindowScripts["bulk quiet stores"], whole, asyncInline); started < 100 {
		t.Fatalf("bulk quiet stores: %d requests started asynchronously, want at least 100", started)
	}
}

// zeroBinCAS returns the binary response stream s with every CAS zero.
func zeroBinCAS(s string) string {
	b := []byte(s)
	for p := 0; p+24 <= len(b); {
		for i := 16; i < 24; i++ {
			b[p+i] = 0
		}
		p += 24 + int(binary.BigEndian.Uint32(b[p+8:]))
	}
	return string(b)
}

// FuzzBinaryWindows serves arbitrary binary input one by one (a backend
// without the asynchronous methods) and with windows (an asynchronous
// backend that completes inline): the replies must be the same bytes,
// whole and one byte at a time.
func FuzzBinaryWindows(f *testing.F) {
	for _, s := range binWindowScripts {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		in = append([]byte{0x80}, in...)
		for _, rd := range readers[:2] {
			s := &memcache.Server{Backend: memtest.New(fixedClock), Now: fixedClock, MaxItemSize: 1024}
			fc := &fakeConn{r: rd.wrap(strings.NewReader(string(in)))}
			s.ServeConn(fc)
			want := fc.w.String()
			if got, _ := servePipelined(string(in), rd.wrap, asyncInline); got != want {
				t.Fatalf("%s: windows changed the replies\n got %x\nwant %x", rd.name, got, want)
			}
		}
	})
}
