package rpc

import (
	"runtime"
	"time"

	"kumofs/proto/msgpack"
)

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

// takeBuf starts a write: it marks c writing, takes wbuf (the spare
// becomes the new wbuf) and the replies it owes, and unlocks wmu, which
// the caller holds.
func (c *Conn) takeBuf() []byte {
	c.writing = true
	buf := c.wbuf
	c.wbuf = c.spare[:0]
	c.spare = nil
	c.owedOut, c.owed = c.owed, 0
	c.wmu.Unlock()
	return buf
}

// writeBatch writes what wbuf holds with the calling goroutine. It is called
// with wmu held, !writing and a non-empty wbuf, and returns with wmu
// unlocked. It reports false if the write failed (the conn is then closed).
// Data appended while it writes is left for the writer goroutine, which it
// wakes.
func (c *Conn) writeBatch() bool {
	buf := c.takeBuf()

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
	c.noteBig()
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
		return true // the idle count is the large buffer's: the two take turns
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

// trimAfter is how long a conn keeps write buffers larger than keepSmall
// once no write has used one: a connection that carried a burst of large
// values and went quiet would otherwise hold two of up to keepMax for
// good (after storms of clients, most of what an idle gateway kept).
var trimAfter = 10 * time.Second

// noteBig is called with wmu held after a write: while c holds a buffer
// larger than keepSmall it notes the time and arms the trim timer, once.
func (c *Conn) noteBig() {
	if cap(c.spare) <= keepSmall && cap(c.wbuf) <= keepSmall {
		return
	}
	c.bigAt = monotime()
	if c.trimArmed || c.wclosed {
		return
	}
	c.trimArmed = true
	if c.trim == nil {
		c.trim = time.AfterFunc(trimAfter, c.trimBufs)
	} else {
		c.trim.Reset(trimAfter)
	}
}

// trimBufs, the trim timer's function, lets go of c's large write buffers
// once no write has left one for trimAfter, and waits again otherwise.
func (c *Conn) trimBufs() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return
	}
	if idle := time.Duration(monotime() - c.bigAt); idle < trimAfter {
		c.trim.Reset(trimAfter - idle)
		return
	}
	c.trimArmed = false
	if cap(c.spare) > keepSmall {
		c.spare = nil
	}
	if len(c.wbuf) == 0 && cap(c.wbuf) > keepSmall {
		c.wbuf = nil
	}
	c.wkeep = bufKeeper{}
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
	buf := c.takeBuf()

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
	c.noteBig()
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
// over replyHigh, or any while the replies owed on all of a Server's
// connections are over ReplyMemory. Peers that ask for large values and
// do not read would otherwise each make the server hold replyHigh (or,
// with an allowance per connection, that allowance and a reply each: 400
// connections asking for ten 1 MB values held a server at 1 GB of
// replies and 2.5 GB of memory). Past the limit each holds one reply at
// most. ReplyMemory is the default of that limit. wmu is held.
func (c *Conn) overOwed() bool {
	t := c.owed + c.owedOut
	return t > c.replyHigh || c.cfg.replies != nil && t > 0 && c.cfg.replies.Load() > c.cfg.replyMax
}

// decongest clears congested once a write has brought the replies owed
// under half of what overOwed allows; wmu is held.
func (c *Conn) decongest() {
	if !c.congested.Load() {
		return
	}
	t := c.owed + c.owedOut
	if t <= c.replyHigh/2 && (c.cfg.replies == nil || t == 0 || c.cfg.replies.Load() <= c.cfg.replyMax) {
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
