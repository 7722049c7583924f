package memcache_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// Modes of asyncBackend.
const (
	asyncOff     = iota // newTestServer uses memtest as is
	asyncGo             // completions run on a goroutine of their own
	asyncInline         // completions run before GetAsync/SetAsync return
	asyncFail           // completions report an error: the request is served again, blocking
	asyncRefuse         // GetAsync/SetAsync decline
	asyncApplied        // writes take effect, then report ErrMaybeApplied; gets fail
)

// errApplied is the error of asyncApplied's writes.
var errApplied = fmt.Errorf("%w: answer lost in a test", memcache.ErrMaybeApplied)

// testAsyncMode is the mode newTestServer wraps its backend in.
var testAsyncMode = asyncOff

// asyncBackend adds memcache.AsyncBackend to memtest.
type asyncBackend struct {
	*memtest.Backend
	mode    int
	started atomic.Int64
}

var errAsyncTest = errors.New("async test failure")

func (a *asyncBackend) run(f func()) bool {
	if a.mode == asyncRefuse {
		return false
	}
	a.started.Add(1)
	if a.mode == asyncInline {
		f()
	} else {
		go f()
	}
	return true
}

func (a *asyncBackend) GetAsync(key []byte, withCAS bool, done func(*memcache.Item, error)) bool {
	k := append([]byte(nil), key...)
	return a.run(func() {
		if a.mode == asyncFail || a.mode == asyncApplied {
			done(nil, errAsyncTest)
			return
		}
		var it memcache.Item
		err := a.Backend.Get(context.Background(), k, nil, &it)
		done(noCAS(&it, withCAS), err)
	})
}

// untrustedCAS is the CAS unique the test backends answer a get without
// withCAS with, as a replica that cannot vouch for it might: a transcript
// that shows it got a CAS unique the client was not meant to see.
const untrustedCAS = 0xbad0bad0bad0bad0

// noCAS replaces the CAS unique of it by untrustedCAS unless withCAS.
func noCAS(it *memcache.Item, withCAS bool) *memcache.Item {
	if !withCAS {
		it.CAS = untrustedCAS
	}
	return it
}

func (a *asyncBackend) DeleteAsync(key []byte, done func(error)) bool {
	k := append([]byte(nil), key...)
	return a.run(func() {
		if a.mode == asyncFail {
			done(errAsyncTest)
			return
		}
		err := a.Backend.Delete(context.Background(), k, 0)
		if a.mode == asyncApplied && err == nil {
			err = errApplied
		}
		done(err)
	})
}

func (a *asyncBackend) SetAsync(it *memcache.Item, done func(uint64, error)) bool {
	return a.store(memcache.ModeSet, it, done)
}

func (a *asyncBackend) TouchAsync(key []byte, exptime int64, done func(error)) bool {
	k := append([]byte(nil), key...)
	return a.run(func() {
		if a.mode == asyncFail {
			done(errAsyncTest)
			return
		}
		err := a.Backend.Touch(context.Background(), k, exptime)
		if a.mode == asyncApplied && err == nil {
			err = errApplied
		}
		done(err)
	})
}

func (a *asyncBackend) IncrAsync(key []byte, delta uint64, decr bool, done func(uint64, error)) bool {
	if a.mode == asyncApplied {
		// A lost answer to an incr is answered SERVER_ERROR, unlike the
		// blocking path's answer: TestWindowIncrMaybeApplied covers it.
		return false
	}
	k := append([]byte(nil), key...)
	return a.run(func() {
		if a.mode == asyncFail {
			done(0, errAsyncTest)
			return
		}
		v, _, err := a.Backend.Incr(context.Background(), k, delta, decr, nil)
		done(v, err)
	})
}

func (a *asyncBackend) StoreAsync(mode memcache.StoreMode, it *memcache.Item, done func(uint64, error)) bool {
	switch mode {
	case memcache.ModeAdd, memcache.ModeReplace:
	case memcache.ModeAppend, memcache.ModePrepend:
		if a.mode == asyncApplied {
			// A lost answer to an append is answered SERVER_ERROR, unlike
			// the blocking path's answer: TestWindowAppendMaybeApplied.
			return false
		}
	default:
		return false
	}
	return a.store(mode, it, done)
}

// store runs Store(mode, it) as the mode of a says.
func (a *asyncBackend) store(mode memcache.StoreMode, it *memcache.Item, done func(uint64, error)) bool {
	c := *it
	c.Key = append([]byte(nil), it.Key...)
	c.Value = append([]byte(nil), it.Value...)
	return a.run(func() {
		if a.mode == asyncFail {
			done(0, errAsyncTest)
			return
		}
		cas, err := a.Backend.Store(context.Background(), mode, &c)
		if a.mode == asyncApplied && err == nil {
			cas, err = 0, errApplied
		}
		done(cas, err)
	})
}

// TestAsyncTranscripts runs every text and meta transcript (whole, one
// byte and half reads) with each asynchronous mode: the replies must be
// byte for byte those of the blocking path.
func TestAsyncTranscripts(t *testing.T) {
	defer func() { testAsyncMode = asyncOff }()
	for _, m := range []struct {
		name string
		mode int
	}{{"go", asyncGo}, {"inline", asyncInline}, {"fail", asyncFail}, {"refuse", asyncRefuse}} {
		testAsyncMode = m.mode
		t.Run(m.name+"/text", func(t *testing.T) { runTranscripts(t, textCases) })
		t.Run(m.name+"/meta", func(t *testing.T) { runTranscripts(t, metaCases) })
	}
}

// TestAsyncUsed checks that a lone get or set takes the asynchronous path
// and a pipelined one does not.
func TestAsyncUsed(t *testing.T) {
	ab := &asyncBackend{Backend: memtest.New(fixedClock), mode: asyncGo}
	s := &memcache.Server{Backend: ab, Now: fixedClock}
	cases := []struct {
		req     string
		oneByte bool
		want    string
		async   int64
	}{
		{"set a 0 0 1\r\nx\r\nget a\r\n", false, "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n", 1}, // one read: a window of the set alone (the get of its key ends it)
		{"set a 0 0 1\r\nx\r\nget a\r\n", true, "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n", 2},
		{"get a b\r\n", true, "VALUE a 0 1\r\nx\r\nEND\r\n", 2}, // multi-key: every key in flight at once
		{"gets a\r\n", true, "VALUE a 0 1 2\r\nx\r\nEND\r\n", 1},
		{"set b 0 0 1 noreply\r\ny\r\nget b\r\n", true, "VALUE b 0 1\r\ny\r\nEND\r\n", 2},
		{"add c 0 0 1\r\nz\r\n", true, "STORED\r\n", 0}, // only set is asynchronous
	}
	for _, tc := range cases {
		ab.started.Store(0)
		var r = strings.NewReader(tc.req)
		fc := &fakeConn{r: r}
		if tc.oneByte {
			fc.r = oneByte{r}
		}
		s.ServeConn(fc)
		if got := fc.w.String(); got != tc.want {
			t.Errorf("%q: got %q want %q", tc.req, got, tc.want)
		}
		if n := ab.started.Load(); n != tc.async {
			t.Errorf("%q (one byte %v): %d asynchronous requests, want %d", tc.req, tc.oneByte, n, tc.async)
		}
	}
}

type oneByte struct{ r *strings.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// TestAsyncTCP runs closed-loop clients over TCP against each asynchronous
// mode (so replies go through the non-blocking socket write), checking
// every value, with pipelined bursts mixed in.
func TestAsyncTCP(t *testing.T) {
	for _, mode := range []int{asyncGo, asyncInline, asyncFail} {
		ab := &asyncBackend{Backend: memtest.New(nil), mode: mode}
		addr := memtest.StartServer(t, &memcache.Server{Backend: ab})
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				r := bufio.NewReader(c)
				val := strings.Repeat(fmt.Sprint(i), 3000) // larger than one small write
				for j := range 150 {
					v := fmt.Sprint(j) + val
					fmt.Fprintf(c, "set k%d 0 0 %d\r\n%s\r\n", i, len(v), v)
					expectLine(t, r, "STORED\r\n")
					fmt.Fprintf(c, "get k%d\r\n", i)
					expectLine(t, r, fmt.Sprintf("VALUE k%d 0 %d\r\n", i, len(v)))
					expectLine(t, r, v+"\r\n")
					expectLine(t, r, "END\r\n")
					if j%10 == 0 { // a pipelined burst: asynchronous first, blocking after
						fmt.Fprintf(c, "get k%d\r\nget nope\r\nset k%d 0 0 1 noreply\r\nx\r\nget k%d\r\n", i, i, i)
						expectLine(t, r, fmt.Sprintf("VALUE k%d 0 %d\r\n", i, len(v)))
						expectLine(t, r, v+"\r\n")
						expectLine(t, r, "END\r\n")
						expectLine(t, r, "END\r\n")
						expectLine(t, r, fmt.Sprintf("VALUE k%d 0 1\r\n", i))
						expectLine(t, r, "x\r\n")
						expectLine(t, r, "END\r\n")
					}
				}
			}()
		}
		wg.Wait()
		if mode != asyncFail && ab.started.Load() == 0 {
			t.Errorf("mode %d: no request went the asynchronous way", mode)
		}
	}
}

func expectLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

// TestAsyncManyKeys: a multi-key get over more keys than one window, with
// misses among them, answers exactly as the blocking path, in every mode.
func TestAsyncManyKeys(t *testing.T) {
	var req, want strings.Builder
	var line strings.Builder
	line.WriteString("get")
	for i := range 40 {
		k := fmt.Sprintf("k%d", i)
		line.WriteString(" " + k)
		if i%3 == 0 {
			continue // a miss
		}
		v := strings.Repeat("v", i)
		fmt.Fprintf(&req, "set %s %d 0 %d\r\n%s\r\n", k, i, len(v), v)
		want.WriteString("STORED\r\n")
	}
	line.WriteString(" k1\r\n") // a repeated key
	req.WriteString(line.String())
	for i := range 40 {
		if i%3 != 0 {
			fmt.Fprintf(&want, "VALUE k%d %d %d\r\n%s\r\n", i, i, i, strings.Repeat("v", i))
		}
	}
	want.WriteString("VALUE k1 1 1\r\nv\r\nEND\r\n")
	for _, mode := range []int{asyncGo, asyncInline, asyncFail, asyncRefuse} {
		ab := &asyncBackend{Backend: memtest.New(fixedClock), mode: mode}
		s := &memcache.Server{Backend: ab, Now: fixedClock}
		fc := &fakeConn{r: strings.NewReader(req.String())}
		s.ServeConn(fc)
		if got := fc.w.String(); got != want.String() {
			t.Fatalf("mode %d:\n got %q\nwant %q", mode, got, want.String())
		}
		// 26 pipelined sets (in windows) and 41 keys.
		if n := ab.started.Load(); (mode == asyncGo || mode == asyncInline) && n != 67 {
			t.Fatalf("mode %d: %d requests went the asynchronous way, want 67", mode, n)
		}
	}
}

// TestAsyncPipelinedGets: pipelined single-key gets are fetched together
// (a window of up to 64), and every reply equals the blocking path's, byte
// for byte, also when the window stops at another command, a multi-key
// get, a long key or an incomplete line.
func TestAsyncPipelinedGets(t *testing.T) {
	var req strings.Builder
	for i := range 20 {
		fmt.Fprintf(&req, "set p%d %d 0 %d\r\n%s\r\n", i, i, i+1, strings.Repeat("x", i+1))
	}
	for i := range 40 {
		if i%2 == 0 {
			fmt.Fprintf(&req, "get p%d\r\n", i)
		} else {
			fmt.Fprintf(&req, "gets p%d\n", i/2)
		}
	}
	req.WriteString("get p1\r\nget p1 p2\r\nget p3\r\nget " + strings.Repeat("k", 251) + "\r\nget p4\r\nmn\r\nget p5\r\nget p6")
	script := req.String()

	sync := func(wrap func(io.Reader) io.Reader) string {
		s := &memcache.Server{Backend: memtest.New(fixedClock), Now: fixedClock}
		fc := &fakeConn{r: wrap(strings.NewReader(script))}
		s.ServeConn(fc)
		return fc.w.String()
	}
	for _, rd := range readers {
		want := sync(rd.wrap)
		for _, mode := range []int{asyncGo, asyncInline, asyncFail, asyncRefuse} {
			ab := &asyncBackend{Backend: memtest.New(fixedClock), mode: mode}
			s := &memcache.Server{Backend: ab, Now: fixedClock}
			fc := &fakeConn{r: rd.wrap(strings.NewReader(script))}
			s.ServeConn(fc)
			// A window of pipelined sets stores them together, so the CAS
			// uniques of distinct keys may come in another order.
			if got := fc.w.String(); casRE.ReplaceAllString(got, "$1 CAS") != casRE.ReplaceAllString(want, "$1 CAS") {
				t.Fatalf("%s, mode %d: replies differ from the blocking path\n got %q\nwant %q", rd.name, mode, shorten(got), shorten(want))
			}
			if rd.name == "whole" && (mode == asyncGo || mode == asyncInline) && ab.started.Load() < 40 {
				t.Fatalf("%s, mode %d: only %d gets went the asynchronous way", rd.name, mode, ab.started.Load())
			}
		}
	}
}

// casRE matches the CAS unique of a VALUE line.
var casRE = regexp.MustCompile(`(?m)^(VALUE \S+ \d+ \d+) \d+\r$`)

// failWrites is a fakeConn whose peer is gone: every Write fails.
type failWrites struct{ fakeConn }

func (f *failWrites) Write(p []byte) (int, error) { return 0, errors.New("broken pipe") }

// TestAsyncClientGone: a client that sends a get or a set and leaves
// (EOF) before its reply could be written ends its connection quietly: the
// asynchronous reply's write error is not reported once the client is
// known to be gone, as the final flush's is not on the blocking path.
func TestAsyncClientGone(t *testing.T) {
	for _, mode := range []int{asyncGo, asyncInline} {
		var logs []string
		var mu sync.Mutex
		be := &asyncBackend{Backend: memtest.New(fixedClock), mode: mode}
		s := &memcache.Server{Backend: be, Now: fixedClock, Logf: func(f string, a ...any) {
			mu.Lock()
			logs = append(logs, fmt.Sprintf(f, a...))
			mu.Unlock()
		}}
		s.ServeConn(&failWrites{fakeConn{r: strings.NewReader("get k\r\n")}})
		s.ServeConn(&failWrites{fakeConn{r: strings.NewReader("set k 0 0 1\r\nx\r\n")}})
		mu.Lock()
		if len(logs) != 0 {
			t.Errorf("mode %d: logged %q", mode, logs)
		}
		mu.Unlock()
	}
}
