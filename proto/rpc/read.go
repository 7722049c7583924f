package rpc

import (
	"errors"
	"io"
	"os"
	"strconv"
	"time"

	"kumofs/proto/msgpack"
)

const initialReadBuf = 16 << 10

// batchFlushEvery is how long a batch of requests read together runs
// before it sends the replies it has so far.
const batchFlushEvery = 100 * time.Millisecond

// readLoop reads and dispatches frames until the conn fails or closes, then
// waits for the writer and runs onClose.
func (c *Conn) readLoop() {
	err := c.readFrames()
	c.rb.Flush() // what handlers sent elsewhere before a read that failed mid-batch
	var pe protoError
	if err == errMalformed || err == errFrameTooLarge || errors.As(err, &pe) {
		// Flush the replies to the frames before the bad one, then close.
		c.wmu.Lock()
		c.batching = false
		c.wdrain = true
		c.wcond.Signal()
		c.wmu.Unlock()
		<-c.writerDone
	}
	c.close(err)
	<-c.writerDone
	c.wmu.Lock()
	c.unowe(c.owed + c.owedOut) // replies never written
	c.owed, c.owedOut = 0, 0
	c.wmu.Unlock()
	if c.cfg.onClose != nil {
		c.cfg.onClose(c, c.Err())
	}
	close(c.finished)
}

func (c *Conn) readFrames() error {
	buf := make([]byte, initialReadBuf)
	r, w := 0, 0 // buf[r:w] is unparsed input
	// held is what buf took from the frame budget (accepted connections
	// only): what it grew beyond frameFree. While it holds some for an
	// incomplete frame larger than initialReadBuf, reads have a deadline
	// (stalled), renewed (at dl) as bytes come.
	fm := c.cfg.frameMem
	held, stalled := 0, false
	var dl time.Time
	hold := frameHold{nc: c.nc}
	var readAt, partialSince int64 // monotime of the last read, and of the one that began the incomplete frame
	need := 0                      // bytes the incomplete frame at r needs at least (msgpack.MinSize)
	defer fm.release(&hold)
	gaveWay := func(n int) error {
		c.logf("closing connection: its incomplete frame (%d bytes so far) gives way to another connection's", n)
		return errFrameMemory
	}
	for {
		batch := r < w
		var flushedAt int64
		if batch {
			c.beginBatch()
			flushedAt = monotime()
		}
		r0 := r
		for r < w {
			if w-r < need {
				break // the incomplete frame cannot be whole yet
			}
			rest, err := msgpack.Skip(buf[r:w])
			if err == msgpack.ErrShort {
				// Refuse a frame as soon as its headers declare it too
				// large, rather than buffering it up to the limit. What
				// its headers say it needs at least is not parsed again
				// until it has arrived: a frame of many small values
				// parsed anew at every read would cost time quadratic
				// in its size.
				ms := msgpack.MinSize(buf[r:w])
				if w-r > c.cfg.maxFrame || ms > uint64(c.cfg.maxFrame) {
					c.logf("closing connection: frame larger than %d bytes", c.cfg.maxFrame)
					return errFrameTooLarge
				}
				need = int(ms)
				break
			}
			need = 0
			if err != nil {
				c.logf("closing connection: malformed frame: %v", err)
				return errMalformed
			}
			n := w - r - len(rest)
			if n > c.cfg.maxFrame {
				c.logf("closing connection: frame larger than %d bytes (%d)", c.cfg.maxFrame, n)
				return errFrameTooLarge
			}
			if c.congested.Load() {
				// The peer asks for more than it reads: serve the rest
				// of this read once it has read most of what it asked.
				c.rb.Flush()
				c.endBatch()
				if !c.waitReplies() {
					return ErrClosed
				}
				c.beginBatch()
			}
			if err := c.dispatch(buf[r : r+n]); err != nil {
				c.logf("closing connection: %v", err)
				return err
			}
			r += n
			if r < w {
				if now := monotime(); now-flushedAt > int64(batchFlushEvery) {
					// A long batch (large values into a slow store)
					// sends the replies it has so far: the peer hears
					// something at least this often, and does not take
					// a busy connection for a silent one (see Client's
					// probe) and reset it.
					c.rb.Flush()
					c.endBatch()
					c.beginBatch()
					flushedAt = now
				}
			}
		}
		if batch {
			c.rb.Flush()
			c.endBatch()
		}
		switch {
		case r == w:
			partialSince = 0
		case partialSince == 0 || r > r0:
			partialSince = readAt // a frame completed: the next began with this read
		}
		if held > 0 {
			hold.since.Store(partialSince)
		}
		if r == w {
			r, w = 0, 0
			if len(buf) > 1<<20 || held > 0 {
				// Drop a buffer grown for a large frame, giving its
				// budget back.
				buf = make([]byte, initialReadBuf)
				fm.release(&hold)
				held = 0
			}
		}
		if w == len(buf) {
			if r > 0 {
				w = copy(buf, buf[r:w])
				r = 0
			} else {
				size := min(2*len(buf), c.cfg.maxFrame+1)
				if size <= w {
					// Unreachable: a full buffer beyond maxFrame failed above.
					return errFrameTooLarge
				}
				if more := max(size-frameFree, 0) - held; fm != nil && more > 0 {
					if !fm.acquire(&hold, int64(more), c.cfg.callTimeout) {
						if hold.evicted.Load() {
							return gaveWay(w - r)
						}
						c.logf("closing connection: incomplete frames of all connections hold the frame memory limit (%d MiB)", fm.max>>20)
						return errFrameMemory
					}
					held += more
					hold.since.Store(partialSince)
				}
				nb := make([]byte, size)
				copy(nb, buf[:w])
				buf = nb
			}
		}
		if fm != nil && (held > 0 && w-r > initialReadBuf) != stalled {
			// A large frame holds budget: its bytes must keep coming.
			stalled = !stalled
			if stalled {
				dl = time.Now()
				c.nc.SetReadDeadline(dl.Add(fm.stallTime()))
			} else {
				c.nc.SetReadDeadline(time.Time{})
			}
		}
		if hold.evicted.Load() {
			// Checked after setting any deadline above, which would
			// otherwise replace the one evictFor set.
			return gaveWay(w - r)
		}
		n, err := c.read(buf[w:])
		if n > 0 {
			readAt = monotime()
			c.lastRead.Store(readAt)
		}
		if stalled && n > 0 {
			if now := time.Now(); now.Sub(dl) >= fm.stallTime()/4 {
				dl = now
				c.nc.SetReadDeadline(now.Add(fm.stallTime()))
			}
		}
		w += n
		if err != nil {
			if n > 0 {
				continue // parse what arrived before reporting the error
			}
			if err == io.EOF {
				return ErrConnLost
			}
			if hold.evicted.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
				return gaveWay(w - r)
			}
			if stalled && errors.Is(err, os.ErrDeadlineExceeded) {
				c.logf("closing connection: an incomplete frame (%d bytes so far) got no more bytes for %v", w-r, fm.stallTime())
				return errFrameStalled
			}
			return err
		}
	}
}

// Errors that close a connection, reported by Conn.Err.
var (
	errSilent        = errors.New("rpc: peer silent for a whole call timeout")
	errFrameTooLarge = errors.New("rpc: frame too large")
	errMalformed     = errors.New("rpc: malformed frame")
	errBacklog       = errors.New("rpc: peer does not read")
	errFrameMemory   = errors.New("rpc: frame memory limit reached")
	errFrameStalled  = errors.New("rpc: incomplete frame stalled")
)

// protoError describes a well-formed msgpack value that is not a valid frame.
type protoError string

func (e protoError) Error() string { return "rpc: bad frame: " + string(e) }

// dispatch handles one complete frame (one msgpack value). A returned error
// closes the connection.
func (c *Conn) dispatch(frame []byte) error {
	n, b, err := msgpack.ReadArrayHeader(frame)
	if err != nil {
		return protoError("not an array")
	}
	typ, b, err := msgpack.ReadUint(b)
	if err != nil {
		return protoError("bad message type")
	}
	switch {
	case typ == typeRequest && n == 4:
		return c.handleRequest(b)
	case typ == typeResponse && n == 4:
		return c.handleResponse(b)
	case typ == typeHello && n == 3:
		return c.handleHello(b)
	}
	return protoError("type " + strconv.FormatUint(typ, 10) + " with " + strconv.Itoa(int(n)) + " elements")
}

func (c *Conn) handleRequest(b []byte) error {
	msgid, b, err := msgpack.ReadUint32(b)
	if err != nil {
		return protoError("bad request msgid")
	}
	method, params, err := msgpack.ReadUint32(b)
	if err != nil {
		return protoError("bad request method")
	}
	if msgpack.NextType(params) != msgpack.ArrayType {
		c.writeResponse(msgid, appendCode(CodeProtocol), nil)
		return nil
	}
	p := getBuf(len(params))
	*p = append(*p, params...)
	req := c.newRequest()
	req.Method, req.Params, req.Conn, req.msgid, req.buf, req.batch = method, *p, c, msgid, p, &c.rb
	c.serve(req)
	return nil
}

// reqChunk is how many Requests the read goroutine allocates at once.
const reqChunk = 64

// newRequest returns a zeroed Request for the read goroutine. It is never
// reused: a handler may keep it, or reply from anywhere, as long as it likes.
func (c *Conn) newRequest() *Request {
	if len(c.reqs) == 0 {
		c.reqs = make([]Request, reqChunk)
	}
	req := &c.reqs[0]
	c.reqs = c.reqs[1:]
	return req
}

// serve runs the handler; a panic in it is logged and answered with
// CodeServer (if the handler had not replied), and the connection stays open.
func (c *Conn) serve(req *Request) {
	defer func() {
		if v := recover(); v != nil {
			c.logf("handler for method %d panicked: %v", req.Method, v)
			if req.state.CompareAndSwap(0, 1) {
				c.writeResponse(req.msgid, appendCode(CodeServer), nil)
				req.release()
			}
		}
	}()
	if c.cfg.handler == nil {
		req.ReplyError(&Error{Code: CodeProtocol})
		return
	}
	c.cfg.handler.ServeRPC(req)
}

func (c *Conn) handleResponse(b []byte) error {
	msgid, b, err := msgpack.ReadUint32(b)
	if err != nil {
		return protoError("bad response msgid")
	}
	result, err := msgpack.Skip(b) // the frame was validated: this cannot fail
	if err != nil {
		return protoError("bad response error slot")
	}
	errSlot := b[:len(b)-len(result)]

	c.cmu.Lock()
	rec := c.calls[msgid]
	if rec != nil {
		delete(c.calls, msgid)
	}
	c.cmu.Unlock()
	if rec == nil {
		return nil // unknown or timed-out msgid: dropped
	}
	rec.stopTimer()
	c.completeIn(&c.rb, rec, result, decodeError(errSlot))
	return nil
}

// decodeError turns a response's error slot into an error (nil for nil).
func decodeError(slot []byte) error {
	if msgpack.IsNil(slot) {
		return nil
	}
	if code, _, err := msgpack.ReadInt(slot); err == nil {
		return &Error{Code: int(code)}
	}
	if s, _, err := msgpack.ReadRaw(slot); err == nil {
		return &Error{Msg: string(s)}
	}
	return &Error{Code: CodeUnknown, Raw: append([]byte(nil), slot...)}
}

func (c *Conn) handleHello(b []byte) error {
	addr, b, err := msgpack.ReadRaw(b)
	if err != nil {
		return protoError("bad hello address")
	}
	role, _, err := msgpack.ReadUint(b)
	if err != nil || role > 255 {
		return protoError("bad hello role")
	}
	h := &Hello{Addr: append([]byte(nil), addr...), Role: uint8(role)}
	c.hello.Store(h)
	if c.cfg.onHello != nil {
		if reply := c.cfg.onHello(c, *h); reply != nil {
			c.writeHello(reply)
		}
	}
	return nil
}

// appendCode returns an appender for an integer error code.
func appendCode(code int) func([]byte) []byte {
	return codeAppenders[code]
}

var codeAppenders = func() (a [CodeServer + 1]func([]byte) []byte) {
	for i := range a {
		a[i] = func(b []byte) []byte { return msgpack.AppendUint(b, uint64(i)) }
	}
	return
}()
