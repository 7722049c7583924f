package memcache_test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// batchBackend adds memcache.BatchBackend to asyncBackend: a batch holds
// the requests started through it and starts them at Flush, as the
// gateway's batches hold RPC frames.
type batchBackend struct {
	*asyncBackend
	batched atomic.Int64 // requests started through a batch
}

func (b *batchBackend) NewBatch() memcache.Batch { return &testBatch{be: b} }

type testBatch struct {
	be   *batchBackend
	held []func() bool
}

func (t *testBatch) GetAsync(key []byte, withCAS bool, done func(*memcache.Item, error)) bool {
	if t.be.mode == asyncRefuse {
		return false
	}
	k := append([]byte(nil), key...)
	t.be.batched.Add(1)
	t.held = append(t.held, func() bool { return t.be.asyncBackend.GetAsync(k, withCAS, done) })
	return true
}

func (t *testBatch) SetAsync(it *memcache.Item, done func(uint64, error)) bool {
	if t.be.mode == asyncRefuse {
		return false
	}
	c := *it
	c.Key = append([]byte(nil), it.Key...)
	c.Value = append([]byte(nil), it.Value...)
	t.be.batched.Add(1)
	t.held = append(t.held, func() bool { return t.be.asyncBackend.SetAsync(&c, done) })
	return true
}

func (t *testBatch) Flush() {
	for _, f := range t.held {
		if !f() {
			panic("test batch: a held request was refused")
		}
	}
	t.held = t.held[:0]
}

func newLoopServer(t *testing.T, mode int) (*memcache.Server, *batchBackend, string) {
	be := &batchBackend{asyncBackend: &asyncBackend{Backend: memtest.New(fixedClock), mode: mode}}
	s := &memcache.Server{Backend: be, Now: fixedClock, MaxItemSize: 1024, Logf: t.Logf}
	return s, be, memtest.StartServer(t, s)
}

// TestLoopTranscripts runs every text and meta transcript through the
// event loop over TCP, in each backend mode, whole and one byte per write:
// the replies must be byte for byte those of the goroutine path.
func TestLoopTranscripts(t *testing.T) {
	for _, m := range []struct {
		name string
		mode int
	}{{"go", asyncGo}, {"inline", asyncInline}, {"fail", asyncFail}, {"refuse", asyncRefuse}} {
		for _, cs := range []struct {
			name  string
			cases []transcript
		}{{"text", textCases}, {"meta", metaCases}, {"binary", binaryCases}, {"compat", compatCases}, {"kumo", kumoOnlyCases}} {
			for _, tc := range cs.cases {
				t.Run(m.name+"/"+cs.name+"/"+tc.name, func(t *testing.T) {
					for _, oneByte := range []bool{false, true} {
						_, _, addr := newLoopServer(t, m.mode) // a fresh store each time
						got, reset := tcpConverse(t, addr, tc.req, oneByte)
						if reset && strings.HasPrefix(tc.want, got) {
							continue // closed with input unread (quit, a fatal error): the reset may drop the tail
						}
						if got != tc.want {
							t.Errorf("one byte per write %v: request %q\n got %q\nwant %q", oneByte, shorten(tc.req), got, tc.want)
						}
					}
				})
			}
		}
	}
}

// tcpConverse sends req on a new connection (all at once or one byte per
// write), closes its sending side and returns everything the server wrote
// before closing, and whether the connection was reset.
func tcpConverse(t *testing.T, addr, req string, oneByte bool) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var out strings.Builder
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(&out, c)
		done <- err
	}()
	if oneByte {
		for i := 0; i < len(req); i++ {
			if _, err := c.Write([]byte{req[i]}); err != nil {
				break // the server may close early (a fatal protocol error)
			}
		}
	} else {
		c.Write([]byte(req))
	}
	c.(*net.TCPConn).CloseWrite()
	err = <-done
	reset := err != nil && strings.Contains(err.Error(), "reset by peer")
	if err != nil && !reset {
		t.Errorf("reading: %v", err)
	}
	return out.String(), reset
}

// TestLoopUsed: closed-loop gets and sets stay in the loop (every one goes
// through a batch); the first other command hands the connection to a
// goroutine, which serves it and everything after it the ordinary way.
func TestLoopUsed(t *testing.T) {
	s, be, addr := newLoopServer(t, asyncGo)
	c, r := dialT(t, addr)
	fmt.Fprintf(c, "set g 5 0 1\r\nx\r\n")
	expectLine(t, r, "STORED\r\n")
	fmt.Fprintf(c, "gets g\r\n")
	expectLine(t, r, "VALUE g 5 1 1\r\nx\r\nEND\r\n")
	for i := range 50 {
		fmt.Fprintf(c, "set k%d 0 0 2\r\n%02d\r\n", i, i)
		expectLine(t, r, "STORED\r\n")
		fmt.Fprintf(c, "get k%d\r\n", i)
		expectLine(t, r, fmt.Sprintf("VALUE k%d 0 2\r\n%02d\r\nEND\r\n", i, i))
		fmt.Fprintf(c, "gets nope\r\n")
		expectLine(t, r, "END\r\n")
	}
	if n := be.batched.Load(); n != 152 {
		t.Errorf("%d requests went through the loop's batches, want 152", n)
	}
	fmt.Fprintf(c, "version\r\n")
	expectLine(t, r, "VERSION "+memcache.DefaultVersion+"\r\n")
	fmt.Fprintf(c, "get k1\r\n") // on the goroutine, which hands the connection back after it
	expectLine(t, r, "VALUE k1 0 2\r\n01\r\nEND\r\n")
	if n := be.batched.Load(); n != 152 {
		t.Errorf("%d requests through batches after the hand-off, want still 152", n)
	}
	fmt.Fprintf(c, "gets nope\r\n")
	expectLine(t, r, "END\r\n")
	if n := be.batched.Load(); n != 153 {
		t.Errorf("%d requests through batches, want 153 (back in the loop)", n)
	}
	// A multi-key get and a pipelined one: the goroutine serves both, the
	// two keys of the first through a batch of its own.
	fmt.Fprintf(c, "get k1 k2\r\nget k3\r\n")
	expectLine(t, r, "VALUE k1 0 2\r\n01\r\nVALUE k2 0 2\r\n02\r\nEND\r\nVALUE k3 0 2\r\n03\r\nEND\r\n")
	for range 2 { // the first on the goroutine (k3 followed a reply still buffered), the second in the loop
		fmt.Fprintf(c, "gets nope\r\n")
		expectLine(t, r, "END\r\n")
	}
	if n := be.batched.Load(); n != 156 {
		t.Errorf("%d requests through batches, want 156", n)
	}
	if cur, _ := s.Conns(); cur != 1 {
		t.Errorf("%d connections, want 1", cur)
	}
	fmt.Fprintf(c, "stats\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "END\r\n" {
			break
		}
		if strings.HasPrefix(line, "STAT cmd_get ") && line != "STAT cmd_get 108\r\n" ||
			strings.HasPrefix(line, "STAT get_hits ") && line != "STAT get_hits 55\r\n" ||
			strings.HasPrefix(line, "STAT cmd_set ") && line != "STAT cmd_set 51\r\n" {
			t.Errorf("stats: %q", line)
		}
	}
}

// TestLoopTCP runs closed-loop clients with pipelined bursts (which leave
// the loop) against every mode, checking every reply.
func TestLoopTCP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // two loops per server
	for _, mode := range []int{asyncGo, asyncInline, asyncFail} {
		_, be, addr := newLoopServer(t, mode)
		be.Backend = memtest.New(nil)
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
				val := strings.Repeat(fmt.Sprint(i), 900)
				for j := range 100 {
					v := fmt.Sprint(j) + val
					fmt.Fprintf(c, "set k%d 0 0 %d\r\n%s\r\n", i, len(v), v)
					expectLine(t, r, "STORED\r\n")
					fmt.Fprintf(c, "get k%d\r\n", i)
					expectLine(t, r, fmt.Sprintf("VALUE k%d 0 %d\r\n", i, len(v)))
					expectLine(t, r, v+"\r\n")
					expectLine(t, r, "END\r\n")
					if i%2 == 0 && j == 50 { // half the clients pipeline once, and leave the loop
						fmt.Fprintf(c, "get k%d\r\nget nope\r\nset k%d 0 0 1 noreply\r\nx\r\nget k%d\r\n", i, i, i)
						expectLine(t, r, fmt.Sprintf("VALUE k%d 0 %d\r\n", i, len(v)))
						expectLine(t, r, v+"\r\n")
						expectLine(t, r, "END\r\nEND\r\n")
						expectLine(t, r, fmt.Sprintf("VALUE k%d 0 1\r\nx\r\nEND\r\n", i))
					}
				}
			}()
		}
		wg.Wait()
		if mode != asyncFail && be.batched.Load() < 600 {
			t.Errorf("mode %d: %d requests through the loop, want at least 600", mode, be.batched.Load())
		}
	}
}

// TestLoopHandoffOrder: two connections whose requests leave the loop in
// one round (a cas each, for the same item with the same unique) reach the
// backend in the order they arrived, so the first cas sent wins as it does
// with memcached. (A goroutine started last runs first unless the loop
// yields to each as it starts it.) One P makes the order deterministic.
func TestLoopHandoffOrder(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	_, _, addr := newLoopServer(t, asyncInline)
	a, ar := dialT(t, addr)
	b, br := dialT(t, addr)
	for i := range 20 {
		fmt.Fprintf(a, "set k%d 0 0 1\r\nx\r\n", i)
		expectLine(t, ar, "STORED\r\n")
		cas := func(c net.Conn, r *bufio.Reader) string {
			fmt.Fprintf(c, "gets k%d\r\n", i)
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Fields(line)
			expectLine(t, r, "x\r\nEND\r\n")
			return f[len(f)-1]
		}
		ca, cb := cas(a, ar), cas(b, br)
		if ca != cb {
			t.Fatalf("uniques %s and %s differ", ca, cb)
		}
		fmt.Fprintf(a, "cas k%d 0 0 1 %s\r\na\r\n", i, ca)
		fmt.Fprintf(b, "cas k%d 0 0 1 %s\r\nb\r\n", i, cb)
		expectLine(t, ar, "STORED\r\n")
		expectLine(t, br, "EXISTS\r\n")
	}
}

// TestLoopClose: closing the server closes the loop's idle connections and
// one with a request in flight, and counts them out.
func TestLoopClose(t *testing.T) {
	be := &batchBackend{asyncBackend: &asyncBackend{Backend: memtest.New(fixedClock), mode: asyncGo}}
	s := &memcache.Server{Backend: be, Now: fixedClock}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 5 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		conns = append(conns, c)
		fmt.Fprintf(c, "get x\r\n")
		expectLine(t, bufio.NewReader(c), "END\r\n")
	}
	fmt.Fprintf(conns[0], "get partial")
	s.Close()
	if err := <-served; err != memcache.ErrServerClosed {
		t.Errorf("Serve: %v", err)
	}
	for i, c := range conns {
		n, err := c.Read(make([]byte, 10))
		if i == 0 && err != nil && strings.Contains(err.Error(), "reset") {
			continue // closed before the loop read its unfinished request: a reset
		}
		if err != io.EOF {
			t.Errorf("conn %d: read %d, %v; want EOF", i, n, err)
		}
	}
	if cur, _ := s.Conns(); cur != 0 {
		t.Errorf("%d connections after Close, want 0", cur)
	}
}

// TestLoopHostile: clients that send random mixes of valid and broken
// requests, split anywhere, and hang up at random points (with requests in
// flight or half a request sent) leave no connection behind, and the
// server keeps answering.
func TestLoopHostile(t *testing.T) {
	s, _, addr := newLoopServer(t, asyncGo)
	pieces := []string{"get k\r\n", "gets k\r\n", "set k 0 0 3\r\nabc\r\n", "set k 1 2 3 noreply\r\nxyz\r\n",
		"get ", "set k 0 0 5\r\nab", "\x80\x00\x00", "stats\r\n", "get k j\r\n", "\r\n", "garbage\r\n",
		"set k 0 0 99999999\r\n", "get " + strings.Repeat("x", 3000), "set k 0 0 40000\r\n" + strings.Repeat("v", 40000) + "\r\n"}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(i), 7))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			go io.Copy(io.Discard, c) // a client that reads (or not: see below)
			var msg []byte
			for range 1 + rnd.IntN(8) {
				msg = append(msg, pieces[rnd.IntN(len(pieces))]...)
			}
			for len(msg) > 0 {
				n := 1 + rnd.IntN(len(msg))
				if _, err := c.Write(msg[:n]); err != nil {
					return // the server gave up on it: fine
				}
				msg = msg[n:]
			}
			if rnd.IntN(2) == 0 {
				c.(*net.TCPConn).SetLinger(0) // a reset instead of a close
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cur, _ := s.Conns()
		if cur == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after every client left", cur)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	if got := tcpGet(t, addr, "set ok 0 0 2\r\nhi\r\nget ok\r\n"); got != "STORED\r\nVALUE ok 0 2\r\nhi\r\nEND\r\n" {
		t.Fatalf("after the hostile clients: %q", got)
	}
}

// tcpGet sends req and reads until the reply ends with END.
func tcpGet(t *testing.T, addr, req string) string {
	t.Helper()
	got, _ := tcpConverse(t, addr, req, false)
	return got
}

// TestLoopControlByteKeys: keys of control and non-ASCII bytes (memaslap's)
// are served in the loop, with the replies of the ordinary code.
func TestLoopControlByteKeys(t *testing.T) {
	_, be, addr := newLoopServer(t, asyncGo)
	c, r := dialT(t, addr)
	key := "\x10\xb0\x01k\xff"
	for i := range 10 {
		fmt.Fprintf(c, "set %s 3 0 1\r\n%d\r\n", key, i)
		expectLine(t, r, "STORED\r\n")
		fmt.Fprintf(c, "get %s\r\n", key)
		expectLine(t, r, fmt.Sprintf("VALUE %s 3 1\r\n%d\r\nEND\r\n", key, i))
	}
	if n := be.batched.Load(); n != 20 {
		t.Errorf("%d of 20 requests went through the loop", n)
	}
}

// TestLoopBinary: binary GET, GETK and SET in a closed loop are served in
// the loop, byte for byte as serveBinary answers them; a quiet GETQ leaves.
func TestLoopBinary(t *testing.T) {
	_, be, addr := newLoopServer(t, asyncGo)
	c, r := dialT(t, addr)
	ext := be32(7) + be32(0)
	for i := range 5 {
		v := fmt.Sprint("v", i)
		c.Write([]byte(binReq(0x01, "bk", ext, v, uint32(i), 0)))
		expectLine(t, r, binRes(0x01, 0, "", "", "", uint32(i), uint64(i+1)))
		c.Write([]byte(binReq(0x00, "bk", "", "", 100, 0)))
		expectLine(t, r, binRes(0x00, 0, "", be32(7), v, 100, uint64(i+1)))
		c.Write([]byte(binReq(0x0c, "bk", "", "", 200, 0)))
		expectLine(t, r, binRes(0x0c, 0, "bk", be32(7), v, 200, uint64(i+1)))
		c.Write([]byte(binReq(0x00, "nope", "", "", 300, 0)))
		expectLine(t, r, binRes(0x00, 1, "", "", "Not found", 300, 0))
		c.Write([]byte(binReq(0x0c, "nope", "", "", 400, 0)))
		expectLine(t, r, binRes(0x0c, 1, "nope", "", "", 400, 0))
	}
	if n := be.batched.Load(); n != 25 {
		t.Errorf("%d of 25 requests went through the loop", n)
	}
	c.Write([]byte(binReq(0x09, "bk", "", "", 1, 0) + binReq(0x0a, "", "", "", 2, 0))) // GETQ, NOOP
	expectLine(t, r, binRes(0x09, 0, "", be32(7), "v4", 1, 5)+binRes(0x0a, 0, "", "", "", 2, 0))
	if n := be.batched.Load(); n != 25 {
		t.Errorf("%d requests through the loop after a GETQ, want still 25", n)
	}
}

// dialT connects to addr with a 20 s deadline; the test closes it.
func dialT(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, bufio.NewReader(c)
}
