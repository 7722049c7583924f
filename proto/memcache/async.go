package memcache

import (
	"errors"
	"fmt"
	"sync/atomic"

	"kumofs/internal/rawio"
)

// AsyncBackend is a Backend that can also start the two commonest requests,
// a single-key get and a set, without the connection's goroutine waiting
// for them. The completion then writes the reply to the client itself, on
// the goroutine that learnt the outcome (for kumo-gateway, the goroutine
// that reads the server's reply), which saves a goroutine hand-off per
// request: the connection's goroutine is already back in Read, waiting for
// the next request.
//
// The connection uses it for text-protocol gets of one key and sets that
// arrive alone (no pipelined input behind them, no earlier reply
// unwritten), and waits for the completion before it serves the next
// request, so replies keep their order. It also starts the keys of a
// multi-key get, up to manyWindow at a time, and writes their VALUE lines
// in key order once each window is complete. A completion with an error other than ErrNotFound is not
// answered from the completion: the request is served again with the
// blocking Backend method (its retries included) on a goroutine of its
// own, so a backend may give up early on anything unusual.
type AsyncBackend interface {
	Backend
	// GetAsync starts Get(key) and reports whether it did. If it did,
	// done is called exactly once, on any goroutine and possibly before
	// GetAsync returns, with the item (it and it.Value are valid only
	// during the call) or an error. done does not block for long. key is
	// valid only during GetAsync.
	//
	// withCAS is set when the client is shown the CAS unique (gets, the
	// binary protocol): the item's CAS must then be one that a later cas
	// can rely on, as Get's always is. Without it a backend may answer
	// from a copy that cannot vouch for its CAS unique (a replica that,
	// for a moment, holds another value under the same one).
	GetAsync(key []byte, withCAS bool, done func(it *Item, err error)) bool
	// SetAsync starts Store(ModeSet, it) and reports whether it did. If
	// it did, done is called exactly once as for GetAsync, with the stored
	// item's CAS unique or an error. it and its slices are valid only
	// during SetAsync.
	SetAsync(it *Item, done func(cas uint64, err error)) bool
}

// AsyncDeleter is an AsyncBackend, or a Batch, that can also start the
// deletes of a pipelined window.
type AsyncDeleter interface {
	// DeleteAsync starts Delete(key, 0) and reports whether it did. If it
	// did, done is called exactly once, on any goroutine and possibly
	// before DeleteAsync returns, with nil (deleted), ErrNotFound, or
	// another error, after which the delete is served again with
	// Backend.Delete (see ErrMaybeApplied). key is valid only during
	// DeleteAsync.
	DeleteAsync(key []byte, done func(err error)) bool
}

// AsyncToucher is an AsyncBackend, or a Batch, that can also start the
// touches of a pipelined window.
type AsyncToucher interface {
	// TouchAsync starts Touch(key, exptime) and reports whether it did. If
	// it did, done is called exactly once, on any goroutine and possibly
	// before TouchAsync returns, with nil (touched), ErrNotFound, or
	// another error, after which the touch is served again with
	// Backend.Touch. key is valid only during TouchAsync.
	TouchAsync(key []byte, exptime int64, done func(err error)) bool
}

// AsyncIncrer is an AsyncBackend, or a Batch, that can also start the
// incr and decr of a pipelined window.
type AsyncIncrer interface {
	// IncrAsync starts Incr(key, delta, decr, nil) and reports whether it
	// did. If it did, done is called exactly once, on any goroutine and
	// possibly before IncrAsync returns, with the new value, ErrNotFound,
	// ErrNonNumeric, an error wrapping ErrMaybeApplied (the request may
	// have been applied: it is answered SERVER_ERROR, never sent again), or
	// another error, after which the request is served again with
	// Backend.Incr. key is valid only during IncrAsync.
	IncrAsync(key []byte, delta uint64, decr bool, done func(val uint64, err error)) bool
}

// AsyncStorer is an AsyncBackend, or a Batch, that can also start the
// add, replace, append and prepend of a pipelined window.
type AsyncStorer interface {
	// StoreAsync starts Store(mode, it) for ModeAdd, ModeReplace,
	// ModeAppend or ModePrepend and reports whether it did; it may decline
	// any mode. If it did, done is called exactly once as for SetAsync, with
	// the stored item's CAS unique, ErrNotStored (the condition failed), or
	// another error, after which the store is served again with
	// Backend.Store — except an append or prepend whose error wraps
	// ErrMaybeApplied: it is answered SERVER_ERROR, never sent again. it and
	// its slices are valid only during StoreAsync.
	StoreAsync(mode StoreMode, it *Item, done func(cas uint64, err error)) bool
}

// errAsyncWrite wraps a failed write of an asynchronous reply.
var errAsyncWrite = errors.New("memcache: writing reply")

// asyncState is the part of a conn that an asynchronous request's
// completion owns while it is pending (conn.pending): the completion
// formats and writes the reply, then hands the outcome back through done.
// While pending, the conn's goroutine touches none of it, nor c.bw, c.it,
// c.out or c.in (the fallback may use them), only c.br.
type asyncState struct {
	be      AsyncBackend // nil if the Backend is not one
	pending bool         // conn goroutine only: a completion owns the reply
	done    chan error   // cap 1: the completion's outcome (nil or a write error)

	key     []byte // copy of the pending request's key
	withCAS bool   // gets: the reply carries the CAS unique
	noreply bool   // sets: no reply
	set     bool   // the pending request is a set (else a get)
	reply   *[]byte
	raw     rawio.Writer

	getDone func(it *Item, err error)   // c.finishGet, bound once
	setDone func(cas uint64, err error) // c.finishSet, bound once

	many *getMany // multi-key gets; nil until the first
}

func (c *conn) initAsync() {
	be, ok := c.s.Backend.(AsyncBackend)
	if !ok {
		return
	}
	c.as.be = be
	c.as.done = make(chan error, 1)
	c.as.getDone = c.finishGet
	c.as.setDone = c.finishSet
	c.as.raw.Init(c.nc)
}

// canAsync reports whether the request just parsed may be served
// asynchronously: the backend allows it, and it is alone (nothing more
// buffered to read, no earlier reply waiting to be written).
func (c *conn) canAsync() bool {
	return c.as.be != nil && c.br.Buffered() == 0 && c.bw.Buffered() == 0
}

// settle waits for the pending asynchronous request, if any, and returns
// the error that writing its reply met.
func (c *conn) settle() error {
	if !c.as.pending {
		return nil
	}
	if testHookSettle != nil {
		testHookSettle()
	}
	err := <-c.as.done
	c.as.pending = false
	if c.as.reply != nil && cap(*c.as.reply) > 32<<10 {
		putBuf(c.as.reply) // do not keep a large value's buffer while idle
		c.as.reply = nil
	}
	return err
}

// getAsync serves "get key" or "gets key" asynchronously if it can, and
// reports whether it did.
func (c *conn) getAsync(key []byte, withCAS bool) bool {
	if !c.canAsync() {
		return false
	}
	c.as.key = append(c.as.key[:0], key...)
	c.as.withCAS, c.as.set = withCAS, false
	c.as.pending = true
	if !c.as.be.GetAsync(key, withCAS, c.as.getDone) {
		c.as.pending = false
		return false
	}
	c.lone = true
	return true
}

// setAsync serves the set in c.it asynchronously if it can, and reports
// whether it did.
func (c *conn) setAsync() bool {
	if !c.canAsync() {
		return false
	}
	c.as.key = append(c.as.key[:0], c.it.Key...)
	c.as.noreply, c.as.set = c.noreply, true
	c.as.pending = true
	if !c.as.be.SetAsync(&c.it, c.as.setDone) {
		c.as.pending = false
		return false
	}
	c.lone = true
	return true
}

// finishGet is the completion of getAsync.
func (c *conn) finishGet(it *Item, err error) {
	st := &c.s.st
	var b []byte
	switch {
	case err == nil:
		st.getHits.Add(1)
		c.s.detail.note(c.as.key, detailHit)
		n := len(c.as.key) + len(it.Value) + 64
		if c.as.reply == nil || cap(*c.as.reply) < n {
			if c.as.reply != nil {
				putBuf(c.as.reply)
			}
			c.as.reply = getBuf(n)
		}
		b = appendValueReply((*c.as.reply)[:0], c.as.key, it, c.as.withCAS)
		b = append(b, "END\r\n"...)
	case errors.Is(err, ErrNotFound):
		st.getMisses.Add(1)
		c.s.detail.note(c.as.key, detailGet)
		b = endReply
	default:
		go c.fallback()
		return
	}
	c.writeAsync(b)
}

// appendValueReply appends the VALUE line and data block of it under key.
func appendValueReply(b, key []byte, it *Item, withCAS bool) []byte {
	b = append(b, "VALUE "...)
	b = append(b, key...)
	b = append(b, ' ')
	b = appendUint(b, uint64(it.Flags))
	b = append(b, ' ')
	b = appendUint(b, uint64(len(it.Value)))
	if withCAS {
		b = append(b, ' ')
		b = appendUint(b, it.CAS)
	}
	b = append(b, "\r\n"...)
	b = append(b, it.Value...)
	return append(b, "\r\n"...)
}

var (
	endReply    = []byte("END\r\n")
	outOfMemory = "SERVER_ERROR out of memory storing object\r\n"
	storedReply = []byte("STORED\r\n")
)

// finishSet is the completion of setAsync.
func (c *conn) finishSet(_ uint64, err error) {
	switch {
	case err != nil:
		go c.fallback()
	case c.as.noreply:
		c.as.done <- nil
	default:
		c.writeAsync(storedReply)
	}
}

// fallback serves the pending request again with the blocking Backend
// methods and the ordinary reply code, on its own goroutine. It owns c.bw,
// c.it and c.out meanwhile (see asyncState).
func (c *conn) fallback() {
	if c.as.set {
		_, err := c.s.Backend.Store(c.ctx, ModeSet, &c.it)
		c.noreply = c.as.noreply
		c.storeReply(err, false)
	} else {
		c.getOne(c.as.key, c.as.withCAS, false, 0)
		c.bw.WriteString("END\r\n")
	}
	err := c.bw.Flush()
	if err != nil {
		err = fmt.Errorf("%w: %w", errAsyncWrite, err)
	}
	c.as.done <- err
}

// writeAsync writes b, the whole reply, and reports the outcome. It makes
// one attempt that does not block (see tryWrite); what the socket does not
// take then is written by a goroutine of its own, so that a client that
// does not read cannot stall the goroutine running the completion.
func (c *conn) writeAsync(b []byte) {
	n, ok := c.as.raw.TryWrite(b)
	c.s.st.bytesWritten.Add(uint64(n))
	if ok && n == len(b) {
		c.as.done <- nil
		return
	}
	go func() {
		m, err := c.s.writeStalled(nil, c.nc, c.nc.Write, b[n:], 0)
		c.s.st.bytesWritten.Add(uint64(m))
		if err != nil {
			err = fmt.Errorf("%w: %w", errAsyncWrite, err)
		}
		c.as.done <- err
	}()
}

// releaseAsync gives back the reply buffer; the conn is done.
func (c *conn) releaseAsync() {
	if c.as.reply != nil {
		putBuf(c.as.reply)
		c.as.reply = nil
	}
}

// manyWindow is the most keys of a multi-key get (or of pipelined gets)
// in flight at once: enough to overlap the round trips, few enough to bound
// the values a connection holds; windowBytes shrinks it for large values.
const manyWindow = 64

// windowBytes is the value bytes a window aims to stay under: windows grow
// (up to manyWindow keys) while their values are small and shrink (down to
// one key) when they are large, so that clients pipelining gets of large
// values do not make the servers and the gateway hold many of them at once.
const windowBytes = 64 << 10

// minWindow is the fewest keys a window takes (but one while the server
// is over its stalled-reply limit, windowSize). Pipelined requests form a
// window only of two or more, and only a window adapts its size: a size of
// one would serve them one at a time for the rest of the connection.
const minWindow = 2

// adapt sets the size of the next window from the value bytes the last
// one (of n keys) fetched.
func (m *getMany) adapt(n int) {
	total, gets := 0, 0
	for i := 0; i < n; i++ {
		if m.slots[i].err == nil {
			total += len(m.slots[i].it.Value)
		}
		if !m.isSet[i] {
			gets++
		}
	}
	if gets > 0 {
		m.perGet, m.known = total/gets, true
	}
	switch {
	case total > windowBytes:
		m.size = max(minWindow, m.size/2)
	case total < windowBytes/2 && n == m.size:
		m.size = min(manyWindow, 2*m.size)
	}
}

// errNotStarted marks a key whose GetAsync declined.
var errNotStarted = errors.New("memcache: not started")

// getMany is the state of a multi-key get's window. The conn goroutine
// fills it, starts the gets and waits on done; each completion owns its
// slot until it decrements left.
type getMany struct {
	slots [manyWindow]struct {
		it  Item
		buf *[]byte // it.Value's storage
		err error
	}
	keys [manyWindow][]byte
	left atomic.Int32
	done chan struct{} // cap 1: the last completion of a window
	size int           // keys per window now, minWindow..manyWindow (see adapt)
	hi   int           // slots used since the last release
	// perGet is the value bytes per get of the last window with gets,
	// once known: what the next window is expected to fetch per get
	// (see fetchbudget.go).
	perGet int
	known  bool

	dones [manyWindow]func(it *Item, err error) // slot completions, bound once

	// Pipelined windows (window.go): which slots are writes (stores, or
	// deletes where isDel, touches where isTouch, incr and decr where
	// isIncr), and theirs.
	isSet    [manyWindow]bool
	isDel    [manyWindow]bool
	isTouch  [manyWindow]bool
	isIncr   [manyWindow]bool
	delDones [manyWindow]func(err error) // deletes' and touches', bound once
	withCAS  [manyWindow]bool
	sets     [manyWindow]winSet
	setDones [manyWindow]func(cas uint64, err error) // bound once
	gk       [manyWindow][]byte                      // a window's gets: keys
	gd       [manyWindow]func(it *Item, err error)   // and completions
	bin      [manyWindow]binSlot                     // binary windows: op and opaque
	// batch, when the Backend is a BatchBackend, sends a window's keys in
	// one write from the conn goroutine (no hand-off to a writer).
	batch Batch
}

func (c *conn) initMany() *getMany {
	// The first window takes minWindow keys: nothing is known of the
	// values yet, and clients that pipeline gets of large values and
	// never read made a gateway fetch four of each at once (hunt 27b: 200
	// such clients, 0.6-1.1 GB held, other clients' gets waiting 5-9 s
	// behind them). Small values double it every window, to 64 keys by
	// the sixth.
	m := &getMany{done: make(chan struct{}, 1), size: minWindow}
	if bb, ok := c.s.Backend.(BatchBackend); ok {
		m.batch = bb.NewBatch()
	}
	for i := range m.setDones {
		m.setDones[i] = func(cas uint64, err error) {
			m.sets[i].err, m.sets[i].cas = err, cas
			if m.left.Add(-1) == 0 {
				m.done <- struct{}{}
			}
		}
	}
	for i := range m.delDones {
		m.delDones[i] = func(err error) {
			m.sets[i].err = err
			if m.left.Add(-1) == 0 {
				m.done <- struct{}{}
			}
		}
	}
	for i := range m.dones {
		m.dones[i] = func(it *Item, err error) {
			sl := &m.slots[i]
			sl.err = err
			if err == nil {
				if sl.buf == nil || cap(*sl.buf) < len(it.Value) {
					if sl.buf != nil {
						putBuf(sl.buf)
					}
					sl.buf = getBuf(len(it.Value))
				}
				sl.it = *it
				sl.it.Value = append((*sl.buf)[:0], it.Value...)
			}
			if m.left.Add(-1) == 0 {
				m.done <- struct{}{}
			}
		}
	}
	return m
}

// writeSlot writes the VALUE lines of slot i (nothing for a miss), serving
// a key whose get declined or failed again with the blocking path. It
// returns false when that wrote SERVER_ERROR: the reply ends there.
func (c *conn) writeSlot(m *getMany, i int, withCAS bool) bool {
	st := &c.s.st
	sl := &m.slots[i]
	switch {
	case sl.err == nil:
		st.getHits.Add(1)
		c.s.detail.note(m.keys[i], detailHit)
		c.writeItem(m.keys[i], &sl.it, withCAS)
	case errors.Is(sl.err, ErrNotFound):
		st.getMisses.Add(1)
		c.s.detail.note(m.keys[i], detailGet)
	default:
		return c.getOne(m.keys[i], withCAS, false, 0)
	}
	return true
}

// window returns the multi-get state with empty slots; done releases
// what the slots hold.
func (c *conn) window() *getMany {
	if c.as.many == nil {
		c.as.many = c.initMany()
	}
	return c.as.many
}

func (m *getMany) release() {
	for i := 0; i < m.hi; i++ {
		if m.slots[i].buf != nil {
			putBuf(m.slots[i].buf)
		}
		m.slots[i].buf, m.slots[i].it, m.keys[i] = nil, Item{}, nil
		m.isSet[i], m.isDel[i], m.isTouch[i], m.isIncr[i], m.withCAS[i] = false, false, false, false, false
		m.sets[i], m.gk[i], m.gd[i] = winSet{}, nil, nil
	}
	m.hi = 0
}

// getMany serves the keys of a multi-key get (rest of the command line)
// with up to manyWindow GetAsync calls in flight, writing the VALUE lines
// in key order. A key whose get declined or failed is served again with
// the blocking path; if that fails too, SERVER_ERROR ends the reply and
// getMany returns false (no END), as the blocking loop does.
func (c *conn) getMany(rest []byte, withCAS bool) bool {
	m := c.window()
	defer m.release()
	for r := rest; ; {
		n := 0
		for size := c.windowSize(m); n < size; {
			key, r2 := nextToken(r)
			if len(key) == 0 {
				break
			}
			r = r2
			m.keys[n], m.withCAS[n] = key, withCAS
			n++
		}
		if n == 0 {
			return true
		}
		c.s.st.cmdGet.Add(uint64(n))
		c.fetchWindow(m, n)
		m.adapt(n)
		for i := 0; i < n; i++ {
			if !c.writeSlot(m, i, withCAS) {
				return false
			}
		}
		if c.werr != nil {
			return false // the client is gone: fetch no more of its keys
		}
	}
}

// singleGet reports whether line is "get KEY" or "gets KEY" with exactly
// one valid key, and returns the key and whether CAS is wanted.
func singleGet(line []byte) (key []byte, withCAS, ok bool) {
	cmd, rest := nextToken(line)
	switch string(cmd) {
	case "get":
	case "gets":
		withCAS = true
	default:
		return nil, false, false
	}
	key, rest = nextToken(rest)
	if len(key) == 0 || len(key) > maxKeyLen {
		return nil, false, false
	}
	if more, _ := nextToken(rest); len(more) != 0 {
		return nil, false, false
	}
	return key, withCAS, true
}
