package rpc

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"kumofs/proto/msgpack"
)

// recordConn reads fixed input and records every Write.
type recordConn struct {
	discardConn
	mu     sync.Mutex
	writes int
	out    bytes.Buffer
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.out.Write(p)
}

var _ net.Conn = (*recordConn)(nil)

// batchConn returns a Conn over n requests arriving in one read, whose
// handler replies inline with a result of size bytes.
func batchConn(t *testing.T, n, size int) (*Conn, *recordConn) {
	var in []byte
	for id := 1; id <= n; id++ {
		in = msgpack.AppendArrayHeader(in, 4)
		in = msgpack.AppendUint(in, typeRequest)
		in = msgpack.AppendUint(in, uint64(id))
		in = msgpack.AppendUint(in, 7)
		in = msgpack.AppendArrayHeader(in, 0)
	}
	rc := &recordConn{discardConn: discardConn{r: bytes.NewReader(in)}}
	result := bytes.Repeat([]byte{'v'}, size)
	c := newConn(rc, connConfig{
		handler: HandlerFunc(func(req *Request) {
			req.Reply(func(b []byte) []byte { return msgpack.AppendRaw(b, result) })
		}),
		maxFrame: 1 << 20, callTimeout: time.Second, writeTimeout: time.Second,
		logf: t.Logf,
	})
	return c, rc
}

// takeAll is a tryWrite that writes everything to rc.
func takeAll(rc *recordConn) func([]byte) (int, bool) {
	return func(b []byte) (int, bool) {
		rc.Write(b)
		return len(b), true
	}
}

// TestBatchRepliedInOneWrite: the replies to the requests of one read,
// served inline, leave with one Write made by the read goroutine (the
// writer goroutine is not even running here).
func TestBatchRepliedInOneWrite(t *testing.T) {
	c, rc := batchConn(t, 20, 30)
	c.tryWrite = takeAll(rc)
	if err := c.readFrames(); err != ErrConnLost {
		t.Fatalf("readFrames: %v, want ErrConnLost at EOF", err)
	}
	if rc.writes != 1 {
		t.Fatalf("%d writes for one batch of 20 replies, want 1", rc.writes)
	}
	b := rc.out.Bytes()
	for id := 1; id <= 20; id++ {
		n, rest, err := msgpack.ReadArrayHeader(b)
		if err != nil || n != 4 {
			t.Fatalf("reply %d: header %d, %v", id, n, err)
		}
		typ, rest, _ := msgpack.ReadUint(rest)
		msgid, rest, _ := msgpack.ReadUint(rest)
		if typ != typeResponse || msgid != uint64(id) || !msgpack.IsNil(rest[:1]) {
			t.Fatalf("reply %d: type %d msgid %d", id, typ, msgid)
		}
		res, rest, err := msgpack.ReadRaw(rest[1:])
		if err != nil || len(res) != 30 {
			t.Fatalf("reply %d: result %q, %v", id, res, err)
		}
		b = rest
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes after the replies", len(b))
	}
}

// TestLargeBatchLeftToWriter: a batch of replies larger than
// maxReaderWrite is not written by the read goroutine (a Write that does
// not fit the socket buffer could block it); the writer goroutine takes it.
func TestLargeBatchLeftToWriter(t *testing.T) {
	c, rc := batchConn(t, 3, maxReaderWrite/2)
	c.tryWrite = takeAll(rc)
	if err := c.readFrames(); err != ErrConnLost {
		t.Fatalf("readFrames: %v", err)
	}
	if rc.writes != 0 {
		t.Fatalf("the read goroutine made %d writes, want 0", rc.writes)
	}
	c.wmu.Lock()
	pending := len(c.wbuf)
	c.wmu.Unlock()
	if pending <= maxReaderWrite {
		t.Fatalf("%d bytes pending, want the whole batch (> %d)", pending, maxReaderWrite)
	}
	waitWritten(t, c, rc, pending)
}

// waitWritten runs c's writer goroutine until rc received n bytes.
func waitWritten(t *testing.T, c *Conn, rc *recordConn, n int) {
	t.Helper()
	go c.writeLoop()
	defer func() {
		c.close(io.EOF)
		<-c.writerDone
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc.mu.Lock()
		got := rc.out.Len()
		rc.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer wrote %d of %d bytes", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestShortReaderWrite: what the socket does not take from the read
// goroutine's non-blocking write is written by the writer goroutine, in
// order; a conn without raw writes (net.Pipe) leaves it all to the writer.
func TestShortReaderWrite(t *testing.T) {
	ref, refrc := batchConn(t, 20, 30)
	ref.tryWrite = takeAll(refrc)
	ref.readFrames()
	want := refrc.out.String()

	for _, take := range []int{-1, 0, 10, 100} {
		c, rc := batchConn(t, 20, 30)
		if take >= 0 {
			c.tryWrite = func(b []byte) (int, bool) {
				n := min(take, len(b))
				if n == 0 {
					return 0, false // EAGAIN
				}
				rc.Write(b[:n])
				return n, true
			}
		} // else: no raw writes at all
		c.readFrames()
		if take <= 0 && rc.writes != 0 {
			t.Fatalf("take %d: %d writes by the read goroutine, want 0", take, rc.writes)
		}
		waitWritten(t, c, rc, len(want))
		if got := rc.out.String(); got != want {
			t.Fatalf("take %d: stream differs from a whole write", take)
		}
	}
}

// endless reads a fixed prefix, then zeros forever, counting the bytes.
type endless struct {
	prefix []byte
	n      int
}

func (e *endless) Read(p []byte) (int, error) {
	k := copy(p, e.prefix)
	e.prefix = e.prefix[k:]
	clear(p[k:])
	e.n += len(p)
	return len(p), nil
}

// TestDeclaredOversizeRefusedEarly: a frame whose headers declare more than
// MaxFrame is refused when the headers arrive, not after the reader
// buffered MaxFrame bytes of it.
func TestDeclaredOversizeRefusedEarly(t *testing.T) {
	src := &endless{prefix: []byte{0x94, 0x00, 0x01, 0x22, 0x91, 0xc6, 0x7f, 0xff, 0xff, 0xf0}}
	c := newConn(discardConn{r: src}, connConfig{
		maxFrame: DefaultMaxFrame, callTimeout: time.Second, writeTimeout: time.Second,
		logf: func(string, ...any) {},
	})
	if err := c.readFrames(); err != errFrameTooLarge {
		t.Fatalf("readFrames: %v, want errFrameTooLarge", err)
	}
	if src.n > initialReadBuf {
		t.Fatalf("read %d bytes before refusing, want one buffer (%d)", src.n, initialReadBuf)
	}
}

// TestBatchForwardsInOneWrite: requests a handler sends to another peer
// through Request.Batch leave together, written by the read goroutine at
// the end of the read (the other conn's writer goroutine is not running).
func TestBatchForwardsInOneWrite(t *testing.T) {
	fwd := &recordConn{discardConn: discardConn{r: bytes.NewReader(nil)}}
	peer := newConn(fwd, connConfig{maxFrame: 1 << 20, callTimeout: time.Minute, writeTimeout: time.Second, logf: t.Logf})
	peer.tryWrite = takeAll(fwd)
	c, rc := batchConn(t, 20, 5)
	c.cfg.handler = HandlerFunc(func(req *Request) {
		peer.GoIn(req.Batch(), 9, nil, 0, func([]byte, error) {})
		if fwd.writes != 0 {
			t.Errorf("a held request was written before the read ended")
		}
		req.Reply(nil)
	})
	c.tryWrite = takeAll(rc)
	if err := c.readFrames(); err != ErrConnLost {
		t.Fatalf("readFrames: %v", err)
	}
	if fwd.writes != 1 || rc.writes != 1 {
		t.Fatalf("%d writes to the peer, %d replies writes; want 1 and 1", fwd.writes, rc.writes)
	}
	b := fwd.out.Bytes()
	for i := 0; i < 20; i++ {
		var err error
		if b, err = msgpack.Skip(b); err != nil {
			t.Fatalf("forwarded request %d: %v", i, err)
		}
	}
	if len(b) != 0 || peer.held != 0 {
		t.Fatalf("%d bytes after 20 requests, held %d", len(b), peer.held)
	}
}

// TestBatchedCompletionReplies: completions of GoBatched calls run on the
// read goroutine with its batch, and replies they send with ReplyIn leave
// in one write at the end of the read; a completion elsewhere gets nil.
func TestBatchedCompletionReplies(t *testing.T) {
	const n = 10
	var in []byte
	for id := 1; id <= n; id++ { // responses to msgids 1..n
		in = msgpack.AppendArrayHeader(in, 4)
		in = msgpack.AppendUint(in, typeResponse)
		in = msgpack.AppendUint(in, uint64(id))
		in = msgpack.AppendNil(in)
		in = msgpack.AppendUint(in, uint64(id))
	}
	src := &recordConn{discardConn: discardConn{r: bytes.NewReader(in)}}
	c := newConn(src, connConfig{maxFrame: 1 << 20, callTimeout: time.Minute, writeTimeout: time.Second, logf: t.Logf})
	c.tryWrite = takeAll(src)
	up := &recordConn{discardConn: discardConn{r: bytes.NewReader(nil)}}
	g := newConn(up, connConfig{maxFrame: 1 << 20, callTimeout: time.Minute, writeTimeout: time.Second, logf: t.Logf})
	g.tryWrite = takeAll(up)
	var nilBatches int
	for i := 1; i <= n; i++ {
		req := &Request{Conn: g, msgid: uint32(100 + i)}
		c.GoBatched(nil, 9, nil, 0, func(res []byte, err error, rb *Batch) {
			if err != nil || rb == nil {
				t.Errorf("completion %d: %v, batch %v", i, err, rb)
				return
			}
			req.ReplyIn(rb, func(b []byte) []byte { return append(b, res...) })
		})
	}
	c.GoBatched(nil, 9, nil, 0, func(res []byte, err error, rb *Batch) {
		if rb == nil && err == ErrClosed {
			nilBatches++
		}
	})
	if err := c.readFrames(); err != ErrConnLost {
		t.Fatalf("readFrames: %v", err)
	}
	if up.writes != 1 {
		t.Fatalf("%d writes of %d replies, want 1", up.writes, n)
	}
	c.close(ErrClosed) // the last call completes on this goroutine, without a batch
	if nilBatches != 1 {
		t.Fatalf("the call completed by close saw a batch")
	}
}

// Ensure that a written buffer is kept for reuse while batches use it: small
// ones always, large ones (batches of large values) up to keepMax until
// keepIdle batches in a row used under a quarter of them.
func TestBufKeeper(t *testing.T) {
	mk := func(n, c int) []byte { return make([]byte, n, c) }
	var k bufKeeper
	steps := []struct {
		buf  []byte
		want bool
	}{
		{mk(10, 4<<10), true},
		{mk(0, keepSmall), true},
		{mk(2<<20, 4<<20), true},          // a large batch: kept
		{mk(1<<20, 4<<20), true},          // a quarter: still in use
		{mk(1<<20-1, 4<<20), true},        // idle 1
		{mk(keepMax+1, keepMax+1), false}, // too large whatever its use
	}
	for i, s := range steps {
		if got := k.keep(s.buf); got != s.want {
			t.Fatalf("step %d (len %d cap %d): keep = %v, want %v", i, len(s.buf), cap(s.buf), got, s.want)
		}
	}
	// keepIdle-1 more idle batches are kept (keepIdle-1 in all), the next is let go.
	for i := 2; i < keepIdle; i++ {
		if !k.keep(mk(100, 4<<20)) {
			t.Fatalf("idle batch %d: let go early", i)
		}
	}
	if k.keep(mk(100, 4<<20)) {
		t.Fatalf("idle batch %d: kept", keepIdle)
	}
	// A busy batch resets the count; a small buffer does not: a conn's
	// two buffers take turns, and a small one between the large one's
	// idle batches kept the large one for good.
	if !k.keep(mk(3<<20, 4<<20)) || !k.keep(mk(1, 2<<20)) {
		t.Fatal("a busy buffer after idle ones was let go")
	}
	k.keep(mk(1, 64))
	if k.idle != 1 {
		t.Fatalf("idle = %d after a small buffer, want 1 (unchanged)", k.idle)
	}
	for i := 2; i < keepIdle; i++ {
		if !k.keep(mk(100, 4<<20)) || !k.keep(mk(100, 64<<10)) {
			t.Fatalf("idle batch %d between small ones: let go early", i)
		}
	}
	if k.keep(mk(100, 4<<20)) {
		t.Fatalf("idle batch %d between small ones: kept", keepIdle)
	}
}

// Ensure that the read goroutine's requests come zeroed and distinct, at
// most one allocation per reqChunk of them.
func TestNewRequestChunks(t *testing.T) {
	c := &Conn{}
	const n = 100 * reqChunk
	seen := make(map[*Request]bool, n)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for i := 0; i < n; i++ {
		r := c.newRequest()
		if seen[r] || r.Method != 0 || r.Conn != nil || r.buf != nil || r.state.Load() != 0 {
			t.Fatalf("request %d (%p) reused or not zeroed: %+v", i, r, r)
		}
		r.Method, r.Conn = 7, c
		seen[r] = true
	}
	runtime.ReadMemStats(&ms1)
	if m := ms1.Mallocs - ms0.Mallocs; m > n/reqChunk+10 {
		t.Fatalf("%d requests took %d allocations, want about %d", n, m, n/reqChunk)
	}
}
