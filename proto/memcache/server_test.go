package memcache_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// TestPipelinedTCP sends many mixed commands in one write and checks that
// every reply comes back, in order.
func TestPipelinedTCP(t *testing.T) {
	addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil)})
	c := dial(t, addr)
	var req, want strings.Builder
	for i := range 500 {
		fmt.Fprintf(&req, "set k%d 0 0 %d noreply\r\n%d\r\nincr k%d 1\r\nget k%d\r\nmg k%d v q\r\nmn\r\n", i, len(fmt.Sprint(i)), i, i, i, i)
		v := fmt.Sprint(i + 1)
		fmt.Fprintf(&want, "%s\r\nVALUE k%d 0 %d\r\n%s\r\nEND\r\nVA %d\r\n%s\r\nMN\r\n", v, i, len(v), v, len(v), v)
	}
	go c.Write([]byte(req.String()))
	if got := readN(t, c, want.Len()); got != want.String() {
		t.Fatalf("pipelined replies differ")
	}
}

// TestBinaryPipelinedTCP mixes quiet and loud binary requests.
func TestBinaryPipelinedTCP(t *testing.T) {
	addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil)})
	c := dial(t, addr)
	var req, want strings.Builder
	for i := range 300 {
		k := fmt.Sprintf("k%d", i)
		req.WriteString(binReq(0x11, k, setExtras(uint32(i), 0), k, uint32(i), 0)) // SETQ: silent
		req.WriteString(binReq(0x09, "missing", "", "", uint32(i), 0))             // GETQ miss: silent
		req.WriteString(binReq(0x0d, k, "", "", uint32(i), 0))                     // GETKQ hit
		want.WriteString(binRes(0x0d, 0, k, be32(uint32(i)), k, uint32(i), uint64(i+1)))
	}
	req.WriteString(binReq(0x0a, "", "", "", 9999, 0))
	want.WriteString(binRes(0x0a, 0, "", "", "", 9999, 0))
	go c.Write([]byte(req.String()))
	if got := readN(t, c, want.Len()); got != want.String() {
		t.Fatalf("binary pipelined replies differ")
	}
}

// TestLargeValuesTCP stores and reads values up to the 1 MiB limit.
func TestLargeValuesTCP(t *testing.T) {
	addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil)})
	c := dial(t, addr)
	r := bufio.NewReader(c)
	for _, n := range []int{0, 1, 4095, 4096, 70000, 1<<20 - 1024} {
		v := bytes.Repeat([]byte{byte('a' + n%26)}, n)
		fmt.Fprintf(c, "set big 1 0 %d\r\n%s\r\nget big\r\n", n, v)
		want := fmt.Sprintf("STORED\r\nVALUE big 1 %d\r\n%s\r\nEND\r\n", n, v)
		if got := readN(t, r, len(want)); got != want {
			t.Fatalf("value of %d bytes: reply differs", n)
		}
	}
	fmt.Fprintf(c, "set big 1 0 %d\r\n%s\r\nversion\r\n", 1<<20, bytes.Repeat([]byte("x"), 1<<20))
	want := "SERVER_ERROR object too large for cache\r\nVERSION " + memcache.DefaultVersion + "\r\n"
	if got := readN(t, r, len(want)); got != want {
		t.Fatalf("too large: got %q", got)
	}
}

// TestLongLineClosed: a command line without a newline beyond the read
// buffer gets an error and the connection is closed; memory stays bounded.
func TestLongLineClosed(t *testing.T) {
	addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil)})
	c := dial(t, addr)
	go c.Write(bytes.Repeat([]byte("x"), 2<<20))
	got, err := io.ReadAll(c)
	if string(got) != "CLIENT_ERROR line too long\r\n" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// waitFor polls cond until it holds, failing the test with what() after
// 10 s.
func waitFor(t *testing.T, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLongMultiGet: a get line of thousands of keys, as client libraries
// send for a multi-get (pymemcache's get_many, Cache::Memcached's
// get_multi), is served whole, text and gets, in the goroutine path and
// through the event loop's hand-over; a longer line than MaxLongLine gets
// an error, and the connections' long lines are given back.
func TestLongMultiGet(t *testing.T) {
	for _, noLoop := range []bool{false, true} {
		t.Run(fmt.Sprintf("noLoop=%v", noLoop), func(t *testing.T) {
			be := memtest.New(nil)
			s := &memcache.Server{Backend: be, NoEventLoop: noLoop}
			addr := memtest.StartServer(t, s)
			c := dial(t, addr)
			r := bufio.NewReader(c)
			const n = 5000 // 5000 keys of 200 bytes: a line of about 1 MB
			keys := make([]string, n)
			var want strings.Builder
			for i := range keys {
				keys[i] = fmt.Sprintf("%0200d", i)
				if i%7 == 0 {
					fmt.Fprintf(c, "set %s 0 0 %d noreply\r\n%d\r\n", keys[i], len(fmt.Sprint(i)), i)
					fmt.Fprintf(&want, "VALUE %s 0 %d\r\n%d\r\n", keys[i], len(fmt.Sprint(i)), i)
				}
			}
			want.WriteString("END\r\n")
			line := "get " + strings.Join(keys, " ") + "\r\n"
			if len(line) < 1000000 {
				t.Fatalf("line of %d bytes", len(line))
			}
			go c.Write([]byte(line))
			if got := readN(t, r, want.Len()); got != want.String() {
				t.Fatalf("got %d bytes %.200q..., want %d", len(got), got, want.Len())
			}
			go c.Write([]byte("get " + strings.Repeat("k ", memcache.MaxLongLine/2) + "\r\n"))
			got, err := io.ReadAll(r)
			if string(got) != "CLIENT_ERROR line too long\r\n" {
				t.Fatalf("a line over %d bytes: got %q, %v", memcache.MaxLongLine, got, err)
			}
			waitFor(t, func() bool { return memcache.LongBytes(s) == 0 }, func() string {
				return fmt.Sprintf("long lines still hold %d bytes", memcache.LongBytes(s))
			})
		})
	}
}

// TestBodyBudget: connections that start large values and stop hold at
// most the server's budget for request bodies; past it a large value waits
// for room and is then refused as memcached refuses one it has no memory
// for (text, meta and binary), its data swallowed and a set's old value
// deleted, while small values are still stored; the budget comes back when
// they close.
func TestBodyBudget(t *testing.T) {
	const size = 100 << 10
	be := memtest.New(nil)
	s := &memcache.Server{Backend: be}
	memcache.SetMaxBodies(s, 3*(size+2))
	memcache.SetBodyWait(s, 50*time.Millisecond)
	addr := memtest.StartServer(t, s)
	value := strings.Repeat("v", size)
	var holders []net.Conn
	for i := 0; i < 3; i++ {
		c := dial(t, addr)
		fmt.Fprintf(c, "set hold%d 0 0 %d\r\npartial", i, size)
		holders = append(holders, c)
	}
	waitBodies := func(want func(int64) bool) {
		t.Helper()
		waitFor(t, func() bool { return want(memcache.BodyBytes(s)) }, func() string {
			return fmt.Sprintf("bodies held: %d", memcache.BodyBytes(s))
		})
	}
	waitBodies(func(n int64) bool { return n == 3*(size+2) })

	c := dial(t, addr)
	r := bufio.NewReader(c)
	go fmt.Fprintf(c, "set old 0 0 1\r\nx\r\nset old 0 0 %d\r\n%s\r\nget old\r\nms m %d T0\r\n%s\r\nset small 0 0 5\r\nsmall\r\nget small\r\n", size, value, size, value)
	want := "STORED\r\nSERVER_ERROR out of memory storing object\r\nEND\r\nSERVER_ERROR out of memory storing object\r\nSTORED\r\nVALUE small 0 5\r\nsmall\r\nEND\r\n"
	if got := readN(t, r, len(want)); got != want {
		t.Fatalf("over the budget: got %q, want %q", got, want)
	}

	b := dial(t, addr)
	req := make([]byte, 24+8+3+size)
	req[0], req[1] = 0x80, 0x01 // set
	binary.BigEndian.PutUint16(req[2:], 3)
	req[4] = 8
	binary.BigEndian.PutUint32(req[8:], uint32(8+3+size))
	copy(req[32:], "big")
	go b.Write(req)
	res := make([]byte, 24+len("Out of memory"))
	if _, err := io.ReadFull(b, res); err != nil {
		t.Fatal(err)
	}
	if st := binary.BigEndian.Uint16(res[6:]); st != 0x82 || string(res[24:]) != "Out of memory" {
		t.Fatalf("binary set over the budget: status %#x, body %q", st, res[24:])
	}

	holders[0].Close()
	waitBodies(func(n int64) bool { return n <= 2*(size+2) })
	go fmt.Fprintf(c, "set now 0 0 %d\r\n%s\r\n", size, value)
	if got := readN(t, r, len("STORED\r\n")); got != "STORED\r\n" {
		t.Fatalf("within the budget again: got %q", got)
	}
}

// TestBodyWait: a large value that finds the budget for request bodies
// full waits for room and is stored once a body before it is, as memcached
// stores a burst of large values it has the memory for (400 clients each
// setting 1 MB at once got 63 "out of memory" replies through a gateway).
func TestBodyWait(t *testing.T) {
	const size = 100 << 10
	be := memtest.New(nil)
	s := &memcache.Server{Backend: be}
	memcache.SetMaxBodies(s, size+2)
	memcache.SetBodyWait(s, time.Minute)
	addr := memtest.StartServer(t, s)
	value := strings.Repeat("v", size)

	first := dial(t, addr)
	fmt.Fprintf(first, "set first 0 0 %d\r\n%s", size, value[:size/2])
	waitFor(t, func() bool { return memcache.BodyBytes(s) == size+2 }, func() string {
		return fmt.Sprintf("bodies held: %d", memcache.BodyBytes(s))
	})
	second := dial(t, addr)
	go fmt.Fprintf(second, "set second 0 0 %d\r\n%s\r\nget second\r\n", size, value)
	waitFor(t, func() bool { return memcache.BodyWaiters(s) == 1 }, func() string {
		return fmt.Sprintf("waiters: %d", memcache.BodyWaiters(s))
	})
	fmt.Fprintf(first, "%s\r\n", value[size/2:])
	if got := readN(t, bufio.NewReader(first), len("STORED\r\n")); got != "STORED\r\n" {
		t.Fatalf("first: %q", got)
	}
	first.Close() // gives its body back
	want := "STORED\r\nVALUE second 0 " + fmt.Sprint(size) + "\r\n" + value + "\r\nEND\r\n"
	if got := readN(t, bufio.NewReader(second), len(want)); got != want {
		t.Fatalf("second: got %d bytes starting %.60q, want STORED and its value", len(got), got)
	}
}

func TestMaxConns(t *testing.T) {
	s := &memcache.Server{Backend: memtest.New(nil), MaxConns: 1}
	addr := memtest.StartServer(t, s)
	c1 := dial(t, addr)
	c1.Write([]byte("version\r\n"))
	readN(t, c1, len("VERSION "+memcache.DefaultVersion+"\r\n"))
	c2 := dial(t, addr)
	got, _ := io.ReadAll(c2)
	if string(got) != "ERROR Too many open connections\r\n" {
		t.Fatalf("second connection got %q", got)
	}
}

// TestStats checks the server block and the backend's fields.
func TestStats(t *testing.T) {
	addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil), Version: "9.9.9"})
	c := dial(t, addr)
	c.Write([]byte("set a 0 0 1\r\nx\r\nget a b\r\n"))
	r := bufio.NewReader(c)
	readN(t, r, len("STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"))
	stats := readStats(t, c, r)
	for k, v := range map[string]string{"version": "9.9.9", "curr_connections": "1", "total_connections": "1",
		"cmd_get": "2", "cmd_set": "1", "get_hits": "1", "get_misses": "1", "curr_items": "1", "total_items": "1",
		"accepting_conns": "1", "listen_disabled_num": "0", "conn_yields": "0", "evictions": "0"} {
		if stats[k] != v {
			t.Errorf("stat %s = %q, want %q", k, stats[k], v)
		}
	}
	cpu := regexp.MustCompile(`^[0-9]+\.[0-9]{6}$`)
	for _, k := range []string{"rusage_user", "rusage_system"} {
		if !cpu.MatchString(stats[k]) {
			t.Errorf("stat %s = %q, want seconds with 6 decimals", k, stats[k])
		}
	}
}

// TestClose: Close ends Serve and open connections.
func TestClose(t *testing.T) {
	s := &memcache.Server{Backend: memtest.New(nil)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	c := dial(t, l.Addr().String())
	c.Write([]byte("mn\r\n"))
	readN(t, c, 4)
	s.Close()
	if err := <-done; err != memcache.ErrServerClosed {
		t.Fatalf("Serve returned %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after Close")
	}
}

// failing is a Backend whose every call fails.
type failing struct{}

var errBoom = errors.New("boom\r\nERROR")

func (failing) Get(context.Context, []byte, []byte, *memcache.Item) error { return errBoom }
func (failing) GetAndTouch(context.Context, []byte, int64, []byte, *memcache.Item) error {
	return errBoom
}
func (failing) Store(context.Context, memcache.StoreMode, *memcache.Item) (uint64, error) {
	return 0, errBoom
}
func (failing) Delete(context.Context, []byte, uint64) error { return errBoom }
func (failing) Incr(context.Context, []byte, uint64, bool, *memcache.Item) (uint64, uint64, error) {
	return 0, 0, errBoom
}
func (failing) Touch(context.Context, []byte, int64) error            { return errBoom }
func (failing) FlushAll(context.Context, int64) error                 { return errBoom }
func (failing) Stats(context.Context, func(name, value string)) error { return errBoom }

// TestBackendErrors: unexpected backend errors become SERVER_ERROR (text)
// or status 0x84 (binary) and the connection stays usable.
func TestBackendErrors(t *testing.T) {
	s := &memcache.Server{Backend: failing{}}
	fc := &fakeConn{r: strings.NewReader("get a\r\nset a 0 0 1\r\nx\r\nincr a 1\r\ndelete a\r\ntouch a 1\r\nflush_all\r\nmg a v\r\nms a 1\r\nx\r\nmd a\r\nma a\r\nset a 0 0 1 noreply\r\nx\r\nmn\r\n")}
	s.ServeConn(fc)
	want := strings.Repeat("SERVER_ERROR boom  ERROR\r\n", 10) + "MN\r\n"
	if fc.w.String() != want {
		t.Fatalf("got %q\nwant %q", fc.w.String(), want)
	}
	fc = &fakeConn{r: strings.NewReader(binReq(0x00, "a", "", "", 1, 0) + binReq(0x11, "a", setExtras(0, 0), "x", 2, 0) + binReq(0x0a, "", "", "", 3, 0))}
	s.ServeConn(fc)
	want = binRes(0x00, 0x84, "", "", errBoom.Error(), 1, 0) + binRes(0x11, 0x84, "", "", errBoom.Error(), 2, 0) + binRes(0x0a, 0, "", "", "", 3, 0)
	if fc.w.String() != want {
		t.Fatalf("binary: got %q\nwant %q", fc.w.String(), want)
	}
}

// noRoom is a Backend whose writes fail for lack of room.
type noRoom struct{ failing }

var errNoRoom = fmt.Errorf("%w (disk full)", memcache.ErrNoMemory)

func (noRoom) Store(context.Context, memcache.StoreMode, *memcache.Item) (uint64, error) {
	return 0, errNoRoom
}
func (noRoom) Incr(context.Context, []byte, uint64, bool, *memcache.Item) (uint64, uint64, error) {
	return 0, 0, errNoRoom
}

// TestNoMemoryError: a write the backend has no room for gets memcached's
// out-of-memory answers: SERVER_ERROR out of memory storing object (text
// and meta), binary status 0x82 "Out of memory".
func TestNoMemoryError(t *testing.T) {
	s := &memcache.Server{Backend: noRoom{}}
	fc := &fakeConn{r: strings.NewReader("set a 0 0 1\r\nx\r\nincr a 1\r\nms a 1\r\nx\r\nset a 0 0 1 noreply\r\nx\r\nmn\r\n")}
	s.ServeConn(fc)
	want := strings.Repeat("SERVER_ERROR out of memory storing object\r\n", 3) + "MN\r\n"
	if fc.w.String() != want {
		t.Fatalf("got %q\nwant %q", fc.w.String(), want)
	}
	fc = &fakeConn{r: strings.NewReader(binReq(0x01, "a", setExtras(0, 0), "x", 1, 0) + binReq(0x11, "a", setExtras(0, 0), "x", 2, 0) + binReq(0x0a, "", "", "", 3, 0))}
	s.ServeConn(fc)
	want = binRes(0x01, 0x82, "", "", "Out of memory", 1, 0) + binRes(0x11, 0x82, "", "", "Out of memory", 2, 0) + binRes(0x0a, 0, "", "", "", 3, 0)
	if fc.w.String() != want {
		t.Fatalf("binary: got %q\nwant %q", fc.w.String(), want)
	}
}

// TestConcurrentClients runs text and binary clients at once (for -race).
func TestConcurrentClients(t *testing.T) {
	addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil)})
	var wg sync.WaitGroup
	for i := range 8 {
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
			for j := range 200 {
				if i%2 == 0 {
					fmt.Fprintf(c, "incr ctr 1\r\nset k%d 0 0 1\r\nx\r\nget k%d\r\n", i, i)
					for _, want := range []string{"", "STORED\r\n", "VALUE k", "x\r\n", "END\r\n"} {
						line, err := r.ReadString('\n')
						if err != nil || !strings.HasPrefix(line, want) {
							t.Errorf("client %d op %d: got %q, %v want %q", i, j, line, err, want)
							return
						}
					}
				} else {
					io.WriteString(c, binReq(0x05, "ctr", incrExtras(1, 0, 0), "", uint32(j), 0))
					h := readN(t, r, 24+8)
					if h[0] != 0x81 || h[7] != 0 {
						t.Errorf("binary incr: %x", h)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// writeCounter is a fakeConn that counts Write calls.
type writeCounter struct {
	fakeConn
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) { w.writes++; return w.fakeConn.Write(p) }

// TestRepliesBatched: pipelined requests that arrive in one read are
// answered with one write.
func TestRepliesBatched(t *testing.T) {
	s, _ := newTestServer(t)
	req := strings.Repeat("set a 0 0 1\r\nx\r\nget a\r\nmn\r\n", 50)
	wc := &writeCounter{fakeConn: fakeConn{r: strings.NewReader(req)}}
	s.ServeConn(wc)
	if want := strings.Repeat("STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nMN\r\n", 50); wc.w.String() != want {
		t.Fatalf("got %q", wc.w.String())
	}
	if wc.writes != 1 {
		t.Fatalf("%d writes for one batch, want 1", wc.writes)
	}
}

// emfileListener fails its first n Accepts the way a process out of file
// descriptors does.
type emfileListener struct {
	net.Listener
	n int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.n > 0 {
		l.n--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptOutOfDescriptors: running out of file descriptors is waited
// out; the listener keeps serving once descriptors are free again (it used
// to stop for good).
func TestAcceptOutOfDescriptors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &memcache.Server{Backend: memtest.New(nil), Logf: func(string, ...any) {}}
	done := make(chan error, 1)
	go func() { done <- s.Serve(&emfileListener{Listener: l, n: 3}) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != memcache.ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	c := dial(t, l.Addr().String())
	c.Write([]byte("mn\r\n"))
	if got := readN(t, c, 4); got != "MN\r\n" {
		t.Fatalf("got %q", got)
	}
}

// readStats sends stats on c and returns the counters.
func readStats(t *testing.T, c net.Conn, r *bufio.Reader) map[string]string {
	t.Helper()
	c.Write([]byte("stats\r\n"))
	stats := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "END\r\n" {
			return stats
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "STAT" {
			t.Fatalf("bad stats line %q", line)
		}
		stats[f[1]] = f[2]
	}
}

// TestCommandCounters: gat, gats, binary GAT and TOUCH count as touches
// only, an mg with T as a touch when it finds the item and as a get when
// it misses, and an ma that creates its item neither as an incr hit nor as
// a miss, as memcached 1.6.18 counts them (checked against it).
func TestCommandCounters(t *testing.T) {
	for _, tc := range []struct {
		name, req, replies string
		want               map[string]string
	}{
		{"text", "set a 0 0 1\r\nx\r\ngat 0 a\r\ngat 0 b\r\ngats 0 a\r\nmg a T30 v\r\nmg b T30\r\n",
			"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nEND\r\nVALUE a 0 1 ",
			map[string]string{"cmd_get": "1", "get_hits": "0", "get_misses": "1", "cmd_touch": "4", "touch_hits": "3", "touch_misses": "1"}},
		// An ma that creates the item counts neither as hit nor miss.
		{"ma N", "ma zz N0\r\nma zz\r\nma nokey\r\nmn\r\n", "HD\r\nHD\r\nNF\r\n",
			map[string]string{"incr_hits": "1", "incr_misses": "1"}},
		{"binary", binReq(0x01, "a", setExtras(0, 0), "x", 1, 0) + binReq(0x1d, "a", be32(0), "", 2, 0) +
			binReq(0x1d, "b", be32(0), "", 3, 0) + binReq(0x1c, "a", be32(0), "", 4, 0) + binReq(0x1c, "b", be32(0), "", 5, 0) +
			binReq(0x0a, "", "", "", 6, 0),
			"",
			map[string]string{"cmd_get": "0", "get_hits": "0", "get_misses": "0", "cmd_touch": "4", "touch_hits": "2", "touch_misses": "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil)})
			c := dial(t, addr)
			c.Write([]byte(tc.req))
			r := bufio.NewReader(c)
			if tc.name == "ma N" {
				readN(t, r, len(tc.replies+"MN\r\n"))
			} else if tc.name == "text" {
				// Up to the first gats reply, then the rest of the
				// lines until mg b's EN.
				readN(t, r, len(tc.replies))
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if line == "EN\r\n" {
						break
					}
				}
			} else {
				// Replies to the set, GAT a, GAT b, TOUCH a, TOUCH b
				// and the NOOP: read through the NOOP's header.
				for i := 0; i < 6; i++ {
					hdr := []byte(readN(t, r, 24))
					readN(t, r, int(binary.BigEndian.Uint32(hdr[8:12])))
				}
			}
			sc := dial(t, addr) // a text connection: stats are server-wide
			stats := readStats(t, sc, bufio.NewReader(sc))
			for k, v := range tc.want {
				if stats[k] != v {
					t.Errorf("stat %s = %q, want %q", k, stats[k], v)
				}
			}
		})
	}
}

// TestConnErrorLinesLimited: connections that end in a protocol error (here
// an invalid binary packet, key longer than the body) log at most ten lines
// a minute however many there are, so a client cannot fill the disk.
func TestConnErrorLinesLimited(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil), Logf: func(f string, a ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(f, a...))
		mu.Unlock()
	}})
	bad := make([]byte, 24)
	bad[0], bad[1] = 0x80, 0x00 // get
	binary.BigEndian.PutUint16(bad[2:], 10)
	binary.BigEndian.PutUint32(bad[8:], 4) // body shorter than the key
	for i := 0; i < 30; i++ {
		c := dial(t, addr)
		c.Write(bad)
		// The server answers 0x04 and closes.
		if _, err := io.ReadAll(c); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(lines)
		mu.Unlock()
		if n >= 10 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 10 {
		t.Fatalf("%d lines logged for 30 bad connections, want 10: %q", len(lines), lines)
	}
	for _, l := range lines {
		if !strings.Contains(l, "memcache: invalid binary packet") {
			t.Fatalf("line %q", l)
		}
	}
}
