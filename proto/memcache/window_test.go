package memcache_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// Ensure that pipelined plain sets (with the single-key gets between them)
// are served in windows whose replies equal the blocking path's, byte for
// byte up to the order of CAS uniques: a set's key taken earlier in the
// window, a set whose data is incomplete or whose data chunk is bad, a too
// large value, another command and noreply all behave as one by one, and a
// get after a set of the same key sees it.
func TestPipelinedSets(t *testing.T) {
	scripts := map[string]string{
		"bulk noreply": func() string {
			var b strings.Builder
			for i := range 40 {
				fmt.Fprintf(&b, "set b%d %d 0 %d noreply\r\n%s\r\n", i, i, i%7, strings.Repeat("v", i%7))
			}
			b.WriteString("get b0\r\nget b39\r\ngets b38\r\n")
			return b.String()
		}(),
		"read your writes":      "set k 0 0 2\r\nv1\r\nset k 0 0 2\r\nv2\r\nget k\r\nset j 1 0 1\r\nx\r\nget k\r\nget j\r\nset k 0 0 2 noreply\r\nv3\r\nget k\r\n",
		"get then set of a key": "set a 0 0 1\r\n1\r\nget a\r\nset a 0 0 1\r\n2\r\nget a\r\n",
		"bad data chunk":        "set a 0 0 1\r\n1\r\nset b 0 0 1\r\n22\r\nget a\r\nget b\r\n",
		"too large":             "set a 0 0 1\r\n1\r\nset big 0 0 2000\r\n" + strings.Repeat("z", 2000) + "\r\nget big\r\nget a\r\n",
		"other commands":        "set a 0 0 1\r\n1\r\nadd a 0 0 1\r\n2\r\nset c 0 0 1\r\n3\r\nincr c 5\r\nset d 0 0 1 junk\r\n4\r\nget d\r\ndelete a\r\nget a\r\n",
		"odd spellings":         "set a 0 0 1\r\n1\r\nset  b 0 0 1\r\n2\r\nset c 0 0 1 noreply extra\r\n3\r\nset d 0 0 -1\r\nset e 0 0 1\n5\r\nget e\r\n",
		"incomplete at the end": "set a 0 0 1\r\n1\r\nset b 0 0 5\r\nabc",
		"bulk delete": func() string {
			var b strings.Builder
			for i := range 30 {
				fmt.Fprintf(&b, "set d%d 0 0 1 noreply\r\n%d\r\n", i, i%10)
			}
			for i := range 40 {
				if i%2 == 0 {
					fmt.Fprintf(&b, "delete d%d noreply\r\n", i)
				} else {
					fmt.Fprintf(&b, "delete d%d\r\n", i)
				}
			}
			b.WriteString("get d0 d1 d29\r\nget d30\r\n")
			return b.String()
		}(),
		"deletes and the same key": "set a 0 0 1\r\n1\r\ndelete a\r\nget a\r\ndelete a\r\nset a 0 0 1\r\n2\r\ndelete a\r\ndelete a\r\nget a\r\n",
		"odd deletes":              "set a 0 0 1\r\n1\r\ndelete a 0\r\ndelete b 0 noreply\r\ndelete a junk\r\ndelete\r\ndelete a noreply more\r\nget a\r\n",
		"bulk add and replace": func() string {
			var b strings.Builder
			for i := range 20 {
				fmt.Fprintf(&b, "set r%d 0 0 1 noreply\r\n%d\r\n", i, i%10)
			}
			for i := range 40 { // r0..r19 exist: adds of those are NOT_STORED, replaces of the rest too
				nr := ""
				if i%3 == 0 {
					nr = " noreply"
				}
				fmt.Fprintf(&b, "add r%d 1 0 2%s\r\na%d\r\n", i, nr, i%10)
				fmt.Fprintf(&b, "replace s%d 2 0 2%s\r\nr%d\r\n", i, nr, i%10)
			}
			b.WriteString("get r0 r19 r20 r39\r\ngets s0\r\n")
			return b.String()
		}(),
		"add and replace of one key": "add a 0 0 1\r\n1\r\nadd a 0 0 1\r\n2\r\nreplace a 0 0 1\r\n3\r\nget a\r\nreplace b 0 0 1\r\n4\r\nadd b 0 0 1\r\n5\r\nreplace b 0 0 1\r\n6\r\nget a b\r\n",
		"bulk touch": func() string {
			var b strings.Builder
			for i := range 10 {
				fmt.Fprintf(&b, "set t%d 0 0 1 noreply\r\n%d\r\n", i, i)
			}
			for i := range 30 { // t0..t9 exist
				nr := ""
				if i%2 == 0 {
					nr = " noreply"
				}
				fmt.Fprintf(&b, "touch t%d %d%s\r\n", i, 100+i, nr)
			}
			b.WriteString("get t0 t9 t10\r\n")
			return b.String()
		}(),
		"touch and the same key": "set a 0 0 1\r\n1\r\ntouch a 10\r\nget a\r\ntouch a -1\r\nget a\r\ntouch a 10\r\nset a 0 0 1\r\n2\r\ntouch a 0\r\nget a\r\n",
		"odd touches":            "set a 0 0 1\r\n1\r\ntouch a\r\ntouch a x\r\ntouch a noreply\r\ntouch a 10 junk\r\ntouch a 10 noreply more\r\ntouch  a 5\r\ntouch b 5\r\nget a\r\n",
		"bulk incr and decr": func() string {
			var b strings.Builder
			for i := range 10 {
				fmt.Fprintf(&b, "set c%d 0 0 2 noreply\r\n%d0\r\n", i, i)
			}
			b.WriteString("set word 0 0 3 noreply\r\nabc\r\n")
			for i := range 30 { // c0..c9 exist
				nr := ""
				if i%2 == 0 {
					nr = " noreply"
				}
				op := "incr"
				if i%3 == 0 {
					op = "decr"
				}
				fmt.Fprintf(&b, "%s c%d %d%s\r\n", op, i, 7+i, nr)
			}
			b.WriteString("incr word 1\r\ndecr word 1\r\nincr c1 18446744073709551615\r\nget c0 c1 c9\r\n")
			return b.String()
		}(),
		"incr and the same key": "set n 0 0 1\r\n5\r\nincr n 1\r\nincr n 1\r\nget n\r\ndecr n 100\r\nincr m 1\r\nset m 0 0 1\r\n1\r\nincr m 1\r\n",
		"odd incrs":             "set n 0 0 1\r\n5\r\nincr n\r\nincr n x\r\nincr n noreply\r\nincr n 1 junk\r\nincr n 1 noreply more\r\nincr  n 2\r\ndecr n -1\r\nget n\r\n",
		"one counter": func() string {
			var b strings.Builder
			b.WriteString("set c 0 0 1\r\n0\r\nset w 0 0 20\r\n18446744073709551613\r\nset t 0 0 2\r\nhi\r\n")
			for i := range 100 {
				nr := ""
				if i%3 == 0 {
					nr = " noreply"
				}
				fmt.Fprintf(&b, "incr c %d%s\r\n", i%4, nr)
			}
			// Wrapping at 2^64, a decr that ends the group, misses and
			// non-numbers shared by the group.
			b.WriteString("incr w 1\r\nincr w 2\r\nincr w 3\r\ndecr w 1\r\nincr w 1\r\n")
			b.WriteString("incr none 1\r\nincr none 2 noreply\r\nincr none 3\r\nincr t 1\r\nincr t 1\r\nget c w\r\n")
			return b.String()
		}(),
		"bulk append and prepend": func() string {
			var b strings.Builder
			for i := range 10 {
				fmt.Fprintf(&b, "set l%d 0 0 1 noreply\r\n%d\r\n", i, i)
			}
			for i := range 30 { // l0..l9 exist
				op, nr := "append", ""
				if i%2 == 0 {
					op = "prepend"
				}
				if i%3 == 0 {
					nr = " noreply"
				}
				fmt.Fprintf(&b, "%s l%d 5 0 2%s\r\n<%d\r\n", op, i, nr, i%10)
			}
			b.WriteString("get l0 l1 l9 l10\r\nappend l1 0 0 1\r\nx\r\nprepend l1 0 0 1\r\ny\r\nget l1\r\n")
			return b.String()
		}(),
		"odd adds": "add a 0 0 1\r\n1\r\nadd  b 0 0 1\r\n2\r\nreplace c 0 0 1 noreply extra\r\n3\r\nadd d 0 0 -1\r\nappend a 0 0 1\r\n9\r\nprepend a 0 0 1\r\n8\r\nget a b\r\n",
	}
	for name, script := range scripts {
		t.Run(name, func(t *testing.T) {
			sameInEveryMode(t, script, func(_ int, s string) string { return casRE.ReplaceAllString(s, "$1 CAS") })
		})
	}
	// Read whole, the 40 deletes too.
	if _, started := servePipelined(scripts["bulk delete"], func(r io.Reader) io.Reader { return r }, asyncInline); started < 70 {
		t.Fatalf("bulk delete: %d requests started asynchronously, want at least the 30 sets and 40 deletes", started)
	}
	// Read whole, the 20 sets and the 80 adds and replaces start
	// asynchronously.
	if _, started := servePipelined(scripts["bulk add and replace"], func(r io.Reader) io.Reader { return r }, asyncInline); started < 100 {
		t.Fatalf("bulk add and replace: %d requests started asynchronously, want at least 100", started)
	}
	// Read whole, the 10 sets and 30 touches start asynchronously, and
	// the touches are counted as one by one.
	out, started := servePipelined(scripts["bulk touch"]+"stats\r\n", func(r io.Reader) io.Reader { return r }, asyncInline)
	if started < 40 {
		t.Fatalf("bulk touch: %d requests started asynchronously, want at least 40", started)
	}
	for _, stat := range []string{"STAT cmd_touch 30\r\n", "STAT touch_hits 10\r\n", "STAT touch_misses 20\r\n"} {
		if !strings.Contains(out, stat) {
			t.Errorf("bulk touch: stats lack %q", stat)
		}
	}
	// Read whole, the 10 sets and 30 appends and prepends start
	// asynchronously.
	if _, started := servePipelined(scripts["bulk append and prepend"], func(r io.Reader) io.Reader { return r }, asyncInline); started < 40 {
		t.Fatalf("bulk append and prepend: %d requests started asynchronously, want at least 40", started)
	}
	// Read whole, the 11 sets and 30 incrs and decrs start asynchronously.
	if _, started := servePipelined(scripts["bulk incr and decr"], func(r io.Reader) io.Reader { return r }, asyncInline); started < 41 {
		t.Fatalf("bulk incr and decr: %d requests started asynchronously, want at least 41", started)
	}
	// Read whole, the 100 incrs of one counter go out as one per window.
	if _, started := servePipelined(scripts["one counter"], func(r io.Reader) io.Reader { return r }, asyncInline); started > 30 {
		t.Fatalf("one counter: %d requests started asynchronously, want the incrs of a key merged (at most 30)", started)
	}
	// Read whole, the 40 noreply sets go out in windows, asynchronously.
	if _, started := servePipelined(scripts["bulk noreply"], func(r io.Reader) io.Reader { return r }, asyncInline); started < 40 {
		t.Fatalf("bulk noreply: %d requests started asynchronously, want at least the 40 sets", started)
	}
}

// sameInEveryMode serves script one by one (a backend without the
// asynchronous methods) and over asyncBackend in every mode, read whole,
// one byte and half a read at a time, and fails unless norm(mode, replies)
// is the same for all. norm hides what may legitimately differ (the order
// of CAS uniques).
func sameInEveryMode(t *testing.T, script string, norm func(mode int, replies string) string) {
	t.Helper()
	for _, rd := range readers {
		s := &memcache.Server{Backend: memtest.New(fixedClock), Now: fixedClock, MaxItemSize: 1024}
		fc := &fakeConn{r: rd.wrap(strings.NewReader(script))}
		s.ServeConn(fc)
		want := fc.w.String()
		for _, mode := range []int{asyncGo, asyncInline, asyncFail, asyncRefuse, asyncApplied} {
			got, _ := servePipelined(script, rd.wrap, mode)
			if g, w := norm(mode, got), norm(mode, want); g != w {
				t.Fatalf("%s, mode %d:\n got %q\nwant %q", rd.name, mode, g, w)
			}
		}
	}
}

// servePipelined serves script over a fresh asynchronous backend in mode
// and returns the replies and how many requests it started asynchronously.
func servePipelined(script string, wrap func(io.Reader) io.Reader, mode int) (string, int64) {
	ab := &asyncBackend{Backend: memtest.New(fixedClock), mode: mode}
	s := &memcache.Server{Backend: ab, Now: fixedClock, MaxItemSize: 1024}
	fc := &fakeConn{r: wrap(strings.NewReader(script))}
	s.ServeConn(fc)
	return fc.w.String(), ab.started.Load()
}

// FuzzPipelined serves arbitrary text input one by one (a backend without
// the asynchronous methods) and with windows (an asynchronous backend that
// completes inline, so CAS uniques come in the same order): the replies
// must be the same bytes, whole and one byte at a time.
func FuzzPipelined(f *testing.F) {
	for _, s := range []string{
		"set a 0 0 1\r\n1\r\nset b 0 0 1 noreply\r\n2\r\nget a\r\ngets b\r\n",
		"set k 0 0 2\r\nv1\r\nset k 0 0 2\r\nv2\r\nget k\r\n",
		"set a 0 0 1\r\n1\r\nset b 0 0 1\r\n22\r\nget b\r\n",
		"get x\r\nset x 0 0 1\r\n1\r\nget x\r\nset y 0 0 1\n2\r\n",
	} {
		f.Add([]byte(s))
	}
	for _, tc := range textCases {
		f.Add([]byte(tc.req))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 0 && in[0] == 0x80 {
			in[0] = 'x' // keep to the text parser
		}
		for _, rd := range readers[:2] {
			s := &memcache.Server{Backend: memtest.New(fixedClock), Now: fixedClock, MaxItemSize: 1024}
			fc := &fakeConn{r: rd.wrap(strings.NewReader(string(in)))}
			s.ServeConn(fc)
			want := fc.w.String()
			if got, _ := servePipelined(string(in), rd.wrap, asyncInline); got != want {
				t.Fatalf("%s: windows changed the replies\n got %q\nwant %q", rd.name, got, want)
			}
		}
	})
}

// failingAsync fails every request, asynchronous ones included.
type failingAsync struct{ failing }

func (failingAsync) GetAsync(_ []byte, _ bool, done func(*memcache.Item, error)) bool {
	done(nil, errBoom)
	return true
}

func (failingAsync) SetAsync(_ *memcache.Item, done func(uint64, error)) bool {
	done(0, errBoom)
	return true
}

// Ensure that in a window whose requests all fail, each is answered as on
// the blocking path: a noreply set stays silent, and the get after it still
// reports its SERVER_ERROR.
func TestPipelinedFailures(t *testing.T) {
	script := "set a 0 0 1 noreply\r\nx\r\nget b\r\nset c 0 0 1\r\ny\r\nget d\r\nset e 0 0 1 noreply\r\nz\r\n"
	serve := func(be memcache.Backend) string {
		fc := &fakeConn{r: strings.NewReader(script)}
		(&memcache.Server{Backend: be}).ServeConn(fc)
		return fc.w.String()
	}
	want := serve(failing{})
	if strings.Count(want, "SERVER_ERROR") != 3 {
		t.Fatalf("blocking path: %q, want 3 SERVER_ERROR lines", want)
	}
	if got := serve(failingAsync{}); got != want {
		t.Fatalf("windows:\n got %q\nwant %q", got, want)
	}
}

// lostIncrBackend applies every windowed incr and decr, then reports its
// answer lost (an error wrapping ErrMaybeApplied).
type lostIncrBackend struct{ *asyncBackend }

func (l lostIncrBackend) IncrAsync(key []byte, delta uint64, decr bool, done func(uint64, error)) bool {
	l.Backend.Incr(context.Background(), key, delta, decr, nil)
	done(0, errApplied)
	return true
}

// Ensure that a windowed incr or decr whose answer was lost after it was
// applied is answered SERVER_ERROR and never sent again: a second attempt
// would count twice.
func TestWindowIncrMaybeApplied(t *testing.T) {
	ab := &asyncBackend{Backend: memtest.New(fixedClock), mode: asyncInline}
	s := &memcache.Server{Backend: lostIncrBackend{ab}, Now: fixedClock}
	fc := &fakeConn{r: strings.NewReader("set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 1 noreply\r\nincr n 1\r\nget n\r\n")}
	s.ServeConn(fc)
	want := "STORED\r\n" +
		"SERVER_ERROR " + errApplied.Error() + "\r\n" +
		"SERVER_ERROR " + errApplied.Error() + "\r\n" +
		"VALUE n 0 2\r\n15\r\nEND\r\n"
	if got := fc.w.String(); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// lostAddBackend reports every windowed add's answer lost (an error
// wrapping ErrMaybeApplied) without applying it.
type lostAddBackend struct{ *asyncBackend }

func (l lostAddBackend) StoreAsync(mode memcache.StoreMode, it *memcache.Item, done func(uint64, error)) bool {
	if mode != memcache.ModeAdd {
		return l.asyncBackend.StoreAsync(mode, it, done)
	}
	done(0, errApplied)
	return true
}

// Ensure that a windowed add whose answer was lost, and whose retry finds
// an item, is answered STORED only if that item is its own (flags and
// value): an item stored before the add is NOT_STORED, as memcached says.
func TestWindowAddMaybeAppliedFindsOther(t *testing.T) {
	ab := &asyncBackend{Backend: memtest.New(fixedClock), mode: asyncInline}
	s := &memcache.Server{Backend: lostAddBackend{ab}, Now: fixedClock}
	fc := &fakeConn{r: strings.NewReader("set b 0 0 1\r\n1\r\nadd b 0 0 1\r\n9\r\nadd c 0 0 1\r\n9\r\n" +
		"set d 5 0 1\r\n9\r\nadd d 0 0 1\r\n9\r\nget b c d\r\n")}
	s.ServeConn(fc)
	want := "STORED\r\nNOT_STORED\r\nSTORED\r\nSTORED\r\nNOT_STORED\r\n" +
		"VALUE b 0 1\r\n1\r\nVALUE c 0 1\r\n9\r\nVALUE d 5 1\r\n9\r\nEND\r\n"
	if got := fc.w.String(); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// lostTouchBackend reports every windowed touch's answer lost without
// applying it.
type lostTouchBackend struct{ *asyncBackend }

func (l lostTouchBackend) TouchAsync(key []byte, exptime int64, done func(error)) bool {
	done(errApplied)
	return true
}

// Ensure that a windowed touch whose answer was lost, and whose retry
// finds no item, is TOUCHED only if its exptime is past (the first attempt
// may have expired the item): with a later exptime the item was not there.
func TestWindowTouchMaybeAppliedFindsNone(t *testing.T) {
	ab := &asyncBackend{Backend: memtest.New(fixedClock), mode: asyncInline}
	s := &memcache.Server{Backend: lostTouchBackend{ab}, Now: fixedClock}
	fc := &fakeConn{r: strings.NewReader("touch a 100\r\ntouch b -1\r\nset c 0 0 1\r\n1\r\ntouch c 100\r\n")}
	s.ServeConn(fc)
	want := "NOT_FOUND\r\nTOUCHED\r\nSTORED\r\nTOUCHED\r\n"
	if got := fc.w.String(); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// lostAppendBackend applies every windowed store, then reports its answer
// lost (an error wrapping ErrMaybeApplied).
type lostAppendBackend struct{ *asyncBackend }

func (l lostAppendBackend) StoreAsync(mode memcache.StoreMode, it *memcache.Item, done func(uint64, error)) bool {
	l.Backend.Store(context.Background(), mode, it)
	done(0, errApplied)
	return true
}

// Ensure that a windowed append or prepend whose answer was lost after it
// was applied is answered SERVER_ERROR and never sent again (a second
// attempt would append twice), while an add in that state is answered by
// its retry: STORED, the first attempt's success.
func TestWindowAppendMaybeApplied(t *testing.T) {
	ab := &asyncBackend{Backend: memtest.New(fixedClock), mode: asyncInline}
	s := &memcache.Server{Backend: lostAppendBackend{ab}, Now: fixedClock}
	fc := &fakeConn{r: strings.NewReader("set a 0 0 1\r\n1\r\nappend a 0 0 1\r\n2\r\nprepend a 0 0 1 noreply\r\n0\r\n" +
		"add b 0 0 1\r\n9\r\nget a b\r\n")}
	s.ServeConn(fc)
	want := "STORED\r\n" +
		"SERVER_ERROR " + errApplied.Error() + "\r\n" +
		"STORED\r\n" +
		"VALUE a 0 3\r\n012\r\nVALUE b 0 1\r\n9\r\nEND\r\n"
	if got := fc.w.String(); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
