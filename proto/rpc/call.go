package rpc

import (
	"context"
	"errors"
	"sync"
	"time"

	"kumofs/proto/msgpack"
)

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
