package rpc

import (
	"context"
	"errors"
	"log"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"kumofs/internal/rawio"
	"kumofs/proto/msgpack"
)

func defaultLogf(format string, args ...any) { log.Printf(format, args...) }

// connConfig is what a Conn needs from its Client or Server.
type connConfig struct {
	handler      Handler
	onHello      func(c *Conn, h Hello) *Hello // returns the hello to send back, or nil
	onClose      func(c *Conn, err error)      // on the read goroutine, after both goroutines are done
	maxFrame     int
	callTimeout  time.Duration
	writeTimeout time.Duration
	closeSilent  bool
	probe        *Probe
	logf         func(format string, args ...any)
	frameMem     *memBudget    // nil: read buffers grow freely (outgoing connections)
	replies      *atomic.Int64 // replies owed on all of a Server's connections; nil: not counted
	replyMax     int64         // with replies: see overOwed
}

// Conn is one msgpack-RPC connection. It is symmetric: it serves the peer's
// requests with its Handler and sends our calls with Call and Go. All
// methods are safe for concurrent use.
type Conn struct {
	nc  net.Conn
	cfg connConfig

	hello atomic.Pointer[Hello] // what the peer said, if anything

	vmu   sync.Mutex // protects value
	value any

	// Lock order: cmu, then wmu. Neither is held while calling user code,
	// except the append functions (call args, reply results), which run
	// under wmu directly on the write buffer.

	cmu    sync.Mutex // protects calls, nextID, err
	calls  map[uint32]*call
	nextID uint32
	err    error // why the conn closed; nil while open

	wmu     sync.Mutex // protects wbuf, spare, writing, batching, held, wclosed, wdrain, owed, owedOut
	wcond   sync.Cond  // on wmu: wbuf became non-empty, writing ended, or wclosed or wdrain was set
	dcond   sync.Cond  // on wmu: congested was cleared, or wclosed was set
	wbuf    []byte
	spare   []byte // the buffer of the last finished write, reused for wbuf
	writing bool   // a goroutine is writing a batch taken from wbuf
	// batching is set while the read goroutine dispatches the frames of one
	// read: replies appended meanwhile are flushed by it at the end of the
	// batch, not handed to the writer goroutine.
	batching bool
	held     int   // Batches holding frames appended here (see Batch)
	rb       Batch // the read goroutine's: flushed at the end of each batch
	wclosed  bool
	wdrain   bool      // the writer exits once wbuf is empty (closing after a bad frame)
	wkeep    bufKeeper // whether a written buffer is reused as spare

	maxBacklog int // largest unwritten wbuf before the conn is closed

	// Replies owed to the peer: the bytes of replies in wbuf (owed) and in
	// the write in progress (owedOut). While they exceed replyHigh the
	// read goroutine takes no further request (congested is set), until a
	// write brings them under replyHigh/2: a peer that asks for more than
	// it reads is slowed down by TCP instead of making the backlog grow to
	// maxBacklog and losing the connection (a gateway's one connection to
	// a server carries every client's gets). Only replies count: pausing
	// the reads of a conn whose backlog is its own requests would stall
	// two servers that replicate heavily to each other.
	owed, owedOut int
	replyHigh     int
	congested     atomic.Bool

	// tryWrite makes one non-blocking write (see rawio): nc's own TryWrite
	// method if it has one, else a raw socket write; nil if nc supports
	// neither. Used only by the goroutine that set writing.
	tryWrite func(b []byte) (n int, ok bool)
	// read and write block like nc's Read and Write, through rawio (which
	// on Linux does not wake the runtime's sysmon thread) where nc is a
	// socket. read is the read goroutine's, write the one that set writing.
	read  func(b []byte) (int, error)
	write func(b []byte) (int, error)

	lastRead atomic.Int64 // monotime of the last bytes read from the peer
	created  int64        // monotime when made: lastRead until the peer sends something

	closeOnce  sync.Once
	done       chan struct{} // closed by close
	writerDone chan struct{} // closed when the writer goroutine returns
	finished   chan struct{} // closed when both goroutines are done
}

func newConn(nc net.Conn, cfg connConfig) *Conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &Conn{
		nc:         nc,
		cfg:        cfg,
		calls:      make(map[uint32]*call),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		finished:   make(chan struct{}),
		maxBacklog: max(2*cfg.maxFrame, 1<<20),
		replyHigh:  max(cfg.maxFrame/2, 256<<10), // a quarter of maxBacklog
	}
	c.wcond.L = &c.wmu
	c.dcond.L = &c.wmu
	if tw, ok := nc.(interface{ TryWrite([]byte) (int, bool) }); ok {
		c.tryWrite = tw.TryWrite // an in-process conn (internal/memconn)
	} else if w := new(rawio.Writer); w.Init(nc) {
		c.tryWrite = w.TryWrite
	}
	c.read, c.write = nc.Read, nc.Write
	if r := new(rawio.Reader); r.Init(nc) {
		c.read = r.Read
	}
	if w := new(rawio.Writer); w.Init(nc) {
		c.write = w.Write
	}
	c.created = monotime()
	c.lastRead.Store(c.created)
	return c
}

// epoch anchors monotime.
var epoch = time.Now()

// monotime returns monotonic nanoseconds, immune to wall-clock steps.
func monotime() int64 { return int64(time.Since(epoch)) }

// start launches the read and write goroutines. Their owner is the Conn:
// they stop when it closes, and c.finished reports that they have.
func (c *Conn) start() {
	go c.writeLoop()
	go c.readLoop()
	if p := c.cfg.probe; p != nil && c.cfg.closeSilent && p.After > 0 {
		go c.watchLoop(p)
	}
}

// watchLoop sends p's probe when a call has waited p.After with nothing
// arriving; the probe's own timeout then closes a silent conn (see fire).
// It is owned by the Conn and returns when it closes.
func (c *Conn) watchLoop(p *Probe) {
	t := time.NewTicker(p.After / 2)
	defer t.Stop()
	var probing atomic.Bool
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		now, last := monotime(), c.lastRead.Load()
		if now-last < int64(p.After) || probing.Load() {
			continue
		}
		waiting := false
		c.cmu.Lock()
		for _, rec := range c.calls {
			if rec.sent > last && now-rec.sent >= int64(p.After) {
				waiting = true
				break
			}
		}
		c.cmu.Unlock()
		if waiting {
			probing.Store(true)
			c.Go(p.Method, p.Args, p.After, func([]byte, error) { probing.Store(false) })
		}
	}
}

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns our end's network address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// Hello returns the hello the peer sent, or nil if it sent none (yet).
func (c *Conn) Hello() *Hello { return c.hello.Load() }

// SetValue attaches user data (for example the cluster node) to c.
func (c *Conn) SetValue(v any) {
	c.vmu.Lock()
	c.value = v
	c.vmu.Unlock()
}

// Value returns what SetValue stored, or nil.
func (c *Conn) Value() any {
	c.vmu.Lock()
	defer c.vmu.Unlock()
	return c.value
}

// Done returns a channel closed when the connection closes.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection closed, or nil while it is open.
func (c *Conn) Err() error {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	return c.err
}

// Close closes the connection. Pending calls fail with ErrClosed; replies
// not yet written are dropped. It does not wait for the goroutines.
func (c *Conn) Close() error {
	c.close(ErrClosed)
	return nil
}

// close shuts c down once, recording err as the cause.
func (c *Conn) close(err error) {
	c.closeOnce.Do(func() {
		c.cmu.Lock()
		c.err = err
		calls := c.calls
		c.calls = nil
		c.cmu.Unlock()

		c.wmu.Lock()
		c.wclosed = true
		c.wcond.Signal()
		c.dcond.Broadcast()
		c.wmu.Unlock()

		if err == errSilent || errors.Is(err, os.ErrDeadlineExceeded) {
			// The peer is unreachable, not gone: without a reset, the
			// kernel would go on retransmitting what we sent, and a
			// request we gave up on (and the caller retried elsewhere)
			// would reach the peer when the partition heals and be
			// applied after the caller's later writes.
			if tc, ok := c.nc.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
		}
		c.nc.Close()
		close(c.done)

		callErr := pendingErr(err)
		for _, rec := range calls {
			rec.stopTimer()
			c.complete(rec, nil, callErr)
		}
	})
}

// pendingErr is the error pending calls get when the conn closes with err.
func pendingErr(err error) error {
	if err == ErrClosed {
		return ErrClosed
	}
	return ErrConnLost
}

// logf logs with the peer's address as prefix.
func (c *Conn) logf(format string, args ...any) {
	c.cfg.logf("rpc: "+c.nc.RemoteAddr().String()+": "+format, args...)
}

// ---- writing ----

// Writing. Frames are appended to wbuf under wmu; one goroutine at a time
// (writing) takes the whole buffer and writes it with one Write. While the
// read goroutine dispatches the frames of one read (batching), the replies
// its handlers append are written by it at the end of the batch, with one
// Write and no hand-off to another goroutine (a batch of Gets served
// inline costs the server one read and one write). Everything else is
// written by the writer goroutine.

// writeLoop flushes what the others leave in wbuf, one Write at a time.
func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	for {
		c.wmu.Lock()
		for !c.wclosed && (c.writing || c.holding() || len(c.wbuf) == 0) && !(c.wdrain && !c.writing) {
			c.wcond.Wait()
		}
		if c.wclosed || len(c.wbuf) == 0 {
			c.wmu.Unlock()
			return
		}
		if len(c.wbuf) < 32<<10 {
			// Let callers that are about to append do so first: under load
			// this lets one Write carry many frames, for a scheduler
			// round trip of latency.
			c.wmu.Unlock()
			runtime.Gosched()
			c.wmu.Lock()
			if c.wclosed {
				c.wmu.Unlock()
				return
			}
			if c.writing || c.holding() || len(c.wbuf) == 0 {
				c.wmu.Unlock()
				continue // the read goroutine or a Batch writes it
			}
		}
		if !c.writeBatch() {
			return
		}
	}
}

// writeBatch writes what wbuf holds with the calling goroutine. It is called
// with wmu held, !writing and a non-empty wbuf, and returns with wmu
// unlocked. It reports false if the write failed (the conn is then closed).
// Data appended while it writes is left for the writer goroutine, which it
// wakes.
func (c *Conn) writeBatch() bool {
	c.writing = true
	buf := c.wbuf
	c.wbuf = c.spare[:0]
	c.spare = nil
	c.owedOut, c.owed = c.owed, 0
	c.wmu.Unlock()

	c.nc.SetWriteDeadline(time.Now().Add(c.cfg.writeTimeout))
	_, err := c.write(buf)

	c.wmu.Lock()
	c.writing = false
	c.unowe(c.owedOut)
	c.owedOut = 0
	c.decongest()
	if c.wkeep.keep(buf) {
		c.spare = buf[:0]
	}
	if len(c.wbuf) > 0 || c.wdrain {
		c.wcond.Signal()
	}
	c.wmu.Unlock()
	if err != nil {
		c.close(err)
		return false
	}
	return true
}

// bufKeeper decides whether a buffer that has just been written is kept
// for the next batch. Buffers up to keepSmall always are. A larger one (a
// batch of large values) is kept, up to keepMax, while batches keep using
// it: reallocating and regrowing it for every batch cost a server serving
// 100 KB values most of its time in memmove and the garbage collector. One
// that carried under a quarter of its capacity keepIdle times in a row is
// let go, so a burst of large values does not pin memory for good.
type bufKeeper struct {
	idle int // consecutive batches that used under a quarter of a large buffer
}

const (
	keepSmall = 1 << 20
	keepMax   = 8 << 20
	keepIdle  = 16
)

// keep reports whether buf, just written in full, is worth reusing.
func (k *bufKeeper) keep(buf []byte) bool {
	switch c := cap(buf); {
	case c <= keepSmall:
		k.idle = 0
		return true
	case c > keepMax:
		return false
	case len(buf) >= c/4:
		k.idle = 0
		return true
	default:
		k.idle++
		return k.idle < keepIdle
	}
}

// beginBatch and endBatch bracket the dispatch of the frames of one read on
// the read goroutine.
func (c *Conn) beginBatch() {
	c.wmu.Lock()
	c.batching = true
	c.wmu.Unlock()
}

// endBatch writes what the batch appended, unless a write is in progress
// (its writer then takes it). The read goroutine must never block in Write
// (two peers whose read goroutines both wait for the other to read would
// stall), so it makes one non-blocking attempt and leaves what the socket
// did not take, and any batch over maxReaderWrite or on a conn without raw
// writes (net.Pipe), to the writer goroutine.
func (c *Conn) endBatch() {
	c.wmu.Lock()
	c.batching = false
	c.flushHeld()
}

// holding reports whether a batch holds the frames in wbuf. wmu is held.
func (c *Conn) holding() bool { return c.batching || c.held > 0 }

// flushHeld is the end of endBatch and of Batch.Flush: called with wmu
// held, it writes wbuf unless someone still holds it or a write is in
// progress, and returns with wmu unlocked.
func (c *Conn) flushHeld() {
	switch {
	case c.holding() || c.wclosed || c.writing || len(c.wbuf) == 0:
		c.wmu.Unlock()
	case len(c.wbuf) > maxReaderWrite || c.tryWrite == nil:
		c.wcond.Signal()
		c.wmu.Unlock()
	default:
		c.tryWriteBatch()
	}
}

// maxReaderWrite is the largest batch the read goroutine writes itself.
const maxReaderWrite = 64 << 10

// tryWriteBatch is writeBatch with a non-blocking write: called with wmu
// held, !writing and a non-empty wbuf, it returns with wmu unlocked, and
// leaves what the socket did not take at the front of wbuf for the writer
// goroutine.
func (c *Conn) tryWriteBatch() {
	c.writing = true
	buf := c.wbuf
	c.wbuf = c.spare[:0]
	c.spare = nil
	c.owedOut, c.owed = c.owed, 0
	c.wmu.Unlock()

	n, _ := c.tryWrite(buf)

	c.wmu.Lock()
	c.writing = false
	if n < len(buf) {
		rest := buf[:copy(buf, buf[n:])]
		c.spare = c.wbuf[:0]
		c.wbuf = append(rest, c.wbuf...)
		c.owed += min(c.owedOut, len(rest)) // the replies are as likely at the end
		c.unowe(c.owedOut - min(c.owedOut, len(rest)))
	} else {
		c.unowe(c.owedOut)
		if c.wkeep.keep(buf) {
			c.spare = buf[:0]
		}
	}
	c.owedOut = 0
	c.decongest()
	if len(c.wbuf) > 0 {
		c.wcond.Signal()
	}
	c.wmu.Unlock()
}

// beginFrame locks wmu and returns the write buffer's length before the new
// frame, or ok == false (and wmu unlocked) if the conn is closed.
func (c *Conn) beginFrame() (start int, ok bool) {
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		return 0, false
	}
	return len(c.wbuf), true
}

// endFrame hands the frame starting at start to a writer and unlocks wmu:
// while the read goroutine dispatches a batch, endBatch writes it; else the
// writer goroutine is woken if the frame is the first pending data. If the
// unwritten backlog before this frame exceeds maxBacklog (the peer does not
// read), it closes the connection; a single large frame never does.
func (c *Conn) endFrame(start int) {
	if start > c.maxBacklog {
		c.wmu.Unlock()
		c.logf("closing connection: more than %d bytes wait to be written", c.maxBacklog)
		c.close(errBacklog)
		return
	}
	if start == 0 && len(c.wbuf) > 0 && !c.writing && !c.holding() {
		c.wcond.Signal()
	}
	c.wmu.Unlock()
}

// appendUser runs a user append function while wmu is held. If it panics,
// wmu is released (nothing of the frame was committed to wbuf yet) and the
// panic continues.
func (c *Conn) appendUser(b []byte, f func([]byte) []byte) []byte {
	defer func() {
		if v := recover(); v != nil {
			c.wmu.Unlock()
			panic(v)
		}
	}()
	return f(b)
}

// oneValue reports whether b holds exactly one msgpack value.
func oneValue(b []byte) bool {
	rest, err := msgpack.Skip(b)
	return err == nil && len(rest) == 0
}

// writeHello queues [2, addr, role].
func (c *Conn) writeHello(h *Hello) {
	start, ok := c.beginFrame()
	if !ok {
		return
	}
	b := msgpack.AppendArrayHeader(c.wbuf, 3)
	b = msgpack.AppendUint(b, typeHello)
	b = msgpack.AppendRaw(b, h.Addr)
	c.wbuf = msgpack.AppendUint(b, uint64(h.Role))
	c.endFrame(start)
}

// writeResponse queues [1, msgid, error, result]. appendErr == nil means a
// nil error; appendResult == nil a nil result. Each must append exactly one
// value; if appendResult does not, the reply becomes a CodeServer error.
func (c *Conn) writeResponse(msgid uint32, appendErr, appendResult func([]byte) []byte) {
	c.writeResponseIn(nil, msgid, appendErr, appendResult)
}

// writeResponseIn is writeResponse with the frame held in bt, if not nil.
func (c *Conn) writeResponseIn(bt *Batch, msgid uint32, appendErr, appendResult func([]byte) []byte) {
	start, ok := c.beginFrame()
	if !ok {
		return
	}
	if bt != nil {
		bt.hold(c)
	}
	b := msgpack.AppendArrayHeader(c.wbuf, 4)
	b = msgpack.AppendUint(b, typeResponse)
	b = msgpack.AppendUint(b, uint64(msgid))
	mark := len(b)
	if appendErr == nil {
		b = msgpack.AppendNil(b)
	} else {
		b = c.appendUser(b, appendErr)
	}
	mid := len(b)
	if appendResult == nil {
		b = msgpack.AppendNil(b)
	} else {
		b = c.appendUser(b, appendResult)
	}
	if len(b) < mid || !oneValue(b[mark:mid]) || !oneValue(b[mid:]) {
		b = msgpack.AppendUint(b[:mark], CodeServer)
		b = msgpack.AppendNil(b)
		c.wbuf = b
		c.owe(len(b) - start)
		c.endFrame(start)
		c.logf("reply to msgid %d: %v", msgid, ErrBadMessage)
		return
	}
	c.wbuf = b
	c.owe(len(b) - start)
	c.endFrame(start)
}

// owe counts a reply of n bytes just appended to wbuf; wmu is held.
func (c *Conn) owe(n int) {
	c.owed += n
	if ra := c.cfg.replies; ra != nil {
		ra.Add(int64(n))
	}
	if !c.congested.Load() && c.overOwed() {
		c.congested.Store(true)
	}
}

// unowe uncounts n bytes of replies written (or dropped); wmu is held.
func (c *Conn) unowe(n int) {
	if ra := c.cfg.replies; ra != nil && n != 0 {
		ra.Add(-int64(n))
	}
}

// overOwed reports whether the replies owed to the peer are too many:
// over replyHigh, or over replyLow while the replies owed on all of a
// Server's connections are over ReplyMemory (peers that ask for large
// values and do not read would otherwise each make the server hold
// replyHigh). ReplyMemory is the default of that limit. wmu is held.
func (c *Conn) overOwed() bool {
	t := c.owed + c.owedOut
	return t > c.replyHigh || c.cfg.replies != nil && t > replyLow && c.cfg.replies.Load() > c.cfg.replyMax
}

// decongest clears congested once a write has brought the replies owed
// under half of what overOwed allows; wmu is held.
func (c *Conn) decongest() {
	if !c.congested.Load() {
		return
	}
	t := c.owed + c.owedOut
	if t <= c.replyHigh/2 && (c.cfg.replies == nil || t <= replyLow/2 || c.cfg.replies.Load() <= c.cfg.replyMax) {
		c.congested.Store(false)
		c.dcond.Broadcast()
	}
}

// waitReplies is called by the read goroutine, outside a batch, while
// congested is set: it hands the backlog to the writer goroutine and waits
// until the replies owed drop under half of replyHigh. It reports false if
// the conn closed meanwhile (a peer that reads nothing is cut off by the
// writer's WriteTimeout).
func (c *Conn) waitReplies() bool {
	c.wmu.Lock()
	if len(c.wbuf) > 0 && !c.writing && !c.holding() {
		c.wcond.Signal()
	}
	for c.congested.Load() && !c.wclosed {
		c.dcond.Wait()
	}
	ok := !c.wclosed
	c.wmu.Unlock()
	return ok
}

// ---- calls ----

// call is a pending request, pooled. Exactly one party completes it: the one
// that removes it from Conn.calls (response, timer, close or cancel).
type call struct {
	conn  *Conn
	id    uint32
	timer *time.Timer
	sent  int64 // monotime when registered

	// async calls
	done  func(result []byte, err error)
	doneB func(result []byte, err error, rb *Batch)

	// sync calls
	ch  chan struct{} // cap 1; signalled on completion
	res *[]byte
	err error

	// noRecycle is set when the timer could not be stopped: its function
	// may still look at this record, so it must not be reused.
	noRecycle bool
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan struct{}, 1)} }}

func getCall() *call { return callPool.Get().(*call) }

func putCall(rec *call) {
	if rec.noRecycle {
		return
	}
	rec.conn, rec.id, rec.done, rec.doneB, rec.res, rec.err = nil, 0, nil, nil, nil, nil
	callPool.Put(rec)
}

// stopTimer stops rec's timer; if its function may already run, rec is
// marked not reusable.
func (rec *call) stopTimer() {
	if rec.timer != nil && !rec.timer.Stop() {
		rec.noRecycle = true
	}
}

// fire is the timer function.
func (rec *call) fire() {
	c := rec.conn
	c.cmu.Lock()
	if c.calls == nil || c.calls[rec.id] != rec {
		c.cmu.Unlock()
		return // completed by someone else
	}
	delete(c.calls, rec.id)
	c.cmu.Unlock()
	// Nothing at all arrived while this call waited: the peer is gone
	// (a partition, a dead host) rather than slow. Close the conn, so
	// that other calls fail now instead of each waiting its timeout, and
	// the client reconnects (or learns it cannot).
	silent := c.cfg.closeSilent && c.lastRead.Load() < rec.sent
	c.complete(rec, nil, ErrTimeout)
	if silent {
		c.logf("closing connection: %v", errSilent)
		c.close(errSilent)
	}
}

// complete delivers the outcome of rec. For async calls result aliases the
// read buffer and is valid only during done.
func (c *Conn) complete(rec *call, result []byte, err error) {
	c.completeIn(nil, rec, result, err)
}

// completeIn is complete on the read goroutine, whose batch is rb.
func (c *Conn) completeIn(rb *Batch, rec *call, result []byte, err error) {
	if rec.doneB != nil {
		rec.doneB(result, err, rb)
		putCall(rec)
		return
	}
	if rec.done != nil {
		rec.done(result, err)
		putCall(rec)
		return
	}
	if err == nil {
		p := getBuf(len(result))
		*p = append(*p, result...)
		rec.res = p
	}
	rec.err = err
	rec.ch <- struct{}{} // the Call goroutine owns rec from here on
}

// register assigns rec a msgid and arms its timer. From then on rec may be
// completed and recycled at any moment, so the caller must use the returned
// id, not rec.id.
func (c *Conn) register(rec *call, timeout time.Duration) (uint32, error) {
	c.cmu.Lock()
	if c.err != nil {
		err := ErrPeerDown // not sent, safe to retry
		if c.err == ErrClosed {
			err = ErrClosed
		}
		c.cmu.Unlock()
		return 0, err
	}
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	for c.calls[c.nextID] != nil { // only after 2^32 calls with one stuck
		c.nextID++
	}
	rec.conn, rec.id, rec.sent = c, c.nextID, monotime()
	c.calls[rec.id] = rec
	if rec.timer == nil {
		rec.timer = time.AfterFunc(timeout, rec.fire)
	} else {
		rec.timer.Reset(timeout)
	}
	id := rec.id
	c.cmu.Unlock()
	return id, nil
}

// cancel completes the call rec registered as id with err, if it is still
// pending, and reports whether it did.
func (c *Conn) cancel(id uint32, rec *call, err error) bool {
	c.cmu.Lock()
	if c.calls == nil || c.calls[id] != rec {
		c.cmu.Unlock()
		return false
	}
	delete(c.calls, id)
	c.cmu.Unlock()
	rec.stopTimer()
	c.complete(rec, nil, err)
	return true
}

// send registers rec and queues [0, msgid, method, params]. On error rec was
// not sent and is not completed.
func (c *Conn) send(bt *Batch, rec *call, method uint32, args func([]byte) []byte, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = c.cfg.callTimeout
	}
	id, err := c.register(rec, timeout)
	if err != nil {
		return err
	}
	start, ok := c.beginFrame()
	if !ok {
		return nil // closing: close completes rec with ErrConnLost/ErrClosed
	}
	if bt != nil {
		bt.hold(c)
	}
	b := msgpack.AppendArrayHeader(c.wbuf, 4)
	b = msgpack.AppendUint(b, typeRequest)
	b = msgpack.AppendUint(b, uint64(id))
	b = msgpack.AppendUint(b, uint64(method))
	mark := len(b)
	if args == nil {
		b = msgpack.AppendArrayHeader(b, 0)
	} else {
		b = c.appendUser(b, args)
	}
	if len(b) < mark || !oneValue(b[mark:]) {
		c.wbuf = b[:start]
		c.endFrame(start)
		c.cancel(id, rec, ErrBadMessage)
		return nil
	}
	c.wbuf = b
	c.endFrame(start)
	return nil
}

// Go sends a request and returns at once. done is called exactly once, with
// the raw msgpack result or an error: ErrTimeout after timeout (<= 0 means
// the default call timeout), ErrConnLost or ErrClosed, or an *Error from the
// peer. done runs on the connection's read goroutine (or a timer goroutine,
// the goroutine closing the connection, or the caller's on immediate
// failure), so it must not block; result is valid only until done returns. args appends the params array (nil sends
// an empty array).
func (c *Conn) Go(method uint32, args func([]byte) []byte, timeout time.Duration, done func(result []byte, err error)) {
	c.GoIn(nil, method, args, timeout, done)
}

// GoIn is Go, but the request is held in b, if b is not nil, until
// b.Flush (see Batch).
func (c *Conn) GoIn(b *Batch, method uint32, args func([]byte) []byte, timeout time.Duration, done func(result []byte, err error)) {
	rec := getCall()
	rec.done = done
	if err := c.send(b, rec, method, args, timeout); err != nil {
		rec.done = nil
		putCall(rec)
		done(nil, err)
	}
}

// GoBatched is GoIn whose done also learns, as rb, the batch of the
// connection's read goroutine when it runs there (nil elsewhere: a timer,
// a closing goroutine, the caller). Requests done starts and replies it
// sends through rb (GoIn, Request.ReplyIn) leave with that read's other
// replies, without waking writer goroutines; rb is valid only during done.
func (c *Conn) GoBatched(b *Batch, method uint32, args func([]byte) []byte, timeout time.Duration, done func(result []byte, err error, rb *Batch)) {
	rec := getCall()
	rec.doneB = done
	if err := c.send(b, rec, method, args, timeout); err != nil {
		rec.doneB = nil
		putCall(rec)
		done(nil, err, nil)
	}
}

// Call sends a request and waits for its response. The deadline is ctx's if
// it has one, else the default call timeout; cancelling ctx abandons the
// call (a later response is dropped). On success the caller owns the Result
// and must Release it. A call that reaches its deadline returns ErrTimeout.
func (c *Conn) Call(ctx context.Context, method uint32, args func([]byte) []byte) (Result, error) {
	timeout := c.cfg.callTimeout
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return Result{}, ErrTimeout
		}
	}
	rec := getCall()
	if err := c.send(nil, rec, method, args, timeout); err != nil {
		putCall(rec)
		return Result{}, err
	}
	select {
	case <-rec.ch:
	case <-ctx.Done():
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = ErrTimeout
		}
		c.cancel(rec.id, rec, err) // rec is ours until we recycle it
		<-rec.ch
	}
	res, err := Result{p: rec.res}, rec.err
	putCall(rec)
	return res, err
}
