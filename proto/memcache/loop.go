package memcache

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"

	"kumofs/internal/rawio"
)

// The event loop. When the Backend is a BatchBackend and the platform has
// a poller (Linux epoll), Serve does not start a goroutine per connection:
// one loop goroutine waits for all of them, reads each one that became
// readable, and starts the commonest requests (a get of one key or a set,
// text or binary: see parseLoopReq and loopbin.go) through a Batch, which sends the requests of one round together
// when the round ends. The backend's completion writes the reply (as on
// the AsyncBackend fast path). A connection costs no goroutine and no
// buffer while idle, and a round of N requests costs N reads, N writes and
// one write to each server instead of N goroutine wake-ups and hand-offs.
//
// Everything else leaves the loop: the first request that is not a
// well-formed lone get or set (another command, a quiet binary command,
// pipelined input, a value over 32 KiB, a backend error) hands the
// connection, with the bytes read so far, to a goroutine running the
// ordinary connection code, which serves that request and the ones after
// it exactly as if it had served the connection from the start, until it
// waits for a new text request with nothing read ahead right after a lone
// get or set: then, once that reply is written, it hands the connection
// back (errBackToLoop). Clients that pipeline or send multi-key gets stay
// on their goroutine rather than moving in and out at every pause. The loop only
// ever starts a request the ordinary code would have served the same way,
// so the replies are byte for byte the same.

// BatchBackend is an AsyncBackend whose requests can be started in batches
// that leave together (see the event loop above).
type BatchBackend interface {
	AsyncBackend
	// NewBatch returns a Batch for the use of one goroutine.
	NewBatch() Batch
}

// Batch starts requests as AsyncBackend does but may hold them until
// Flush, which must follow promptly.
type Batch interface {
	GetAsync(key []byte, withCAS bool, done func(it *Item, err error)) bool
	SetAsync(it *Item, done func(cas uint64, err error)) bool
	// Flush sends the requests started since the last Flush.
	Flush()
}

// MultiBatch is a Batch that can also start the gets of several keys
// together (the keys of a multi-key get), in fewer messages than a
// GetAsync per key.
type MultiBatch interface {
	Batch
	// GetMulti starts a get of every key and calls done[i] exactly once
	// for keys[i], as GetAsync's done, possibly before it returns; withCAS
	// is GetAsync's, for all of them. An error other than ErrNotFound
	// makes memcache serve that key again through Backend.Get. The keys
	// stay valid until their done is called.
	GetMulti(keys [][]byte, withCAS bool, done []func(it *Item, err error))
}

// poller reports which of the registered connections are readable
// (level-triggered). Implemented by poll_linux.go.
type poller interface {
	add(fd int) error
	arm(fd int, on bool) error
	del(fd int)
	// wait blocks until some descriptors are ready and returns them; the
	// slice is valid until the next wait. It fails once the poller is closed.
	wait() ([]int32, error)
	close() error
}

const (
	loopBufSmall = 4 << 10  // an idle-then-active connection's first buffer
	loopBufMax   = 32 << 10 // the largest request the loop serves itself
	loopMaxLine  = 2 << 10  // a longer command line leaves the loop
)

// loop serves a Server's connections until the poller closes.
type loop struct {
	s  *Server
	be BatchBackend
	p  poller

	mu    sync.Mutex // protects conns
	conns map[int32]*lconn
}

// lconn is a connection served by the loop. Lock order: lconn.mu, then
// loop.mu, then Server.mu.
type lconn struct {
	lp *loop
	nc net.Conn
	fd int32
	rd rawio.Reader
	wr rawio.Writer // used by the pending request's completion only

	mu      sync.Mutex // protects the fields below
	buf     *[]byte    // unconsumed input in (*buf)[:n]; nil when n == 0
	n       int
	pending bool // a request was started; its completion owns the reply
	out     bool // out of the poller: to be handed off or closed, or gone
	more    bool // input arrived while pending: reports are off until it completes
	handoff bool // hand to a goroutine once the pending request completes
	closing bool // close once the pending request completes
	gone    bool // closed, or handed to a goroutine that owns nc now
	proto   byte // the connection's protocol once known (see conn.proto)

	// The pending request. Set by the loop before it starts the request,
	// read by the completion; the input bytes they point into stay put
	// while pending.
	req   loopReq
	reply *[]byte

	getDone func(it *Item, err error)   // finishGet, bound once
	setDone func(cas uint64, err error) // finishSet, bound once
}

// loopSet is a Server's event loops; new connections go to each in turn.
type loopSet struct {
	all  []*loop
	next atomic.Uint32
}

// loopsFor is how many loops a Server runs: one per two Ps (the replies
// are written on the backend's goroutines, the loops only read and parse).
func loopsFor(procs int) int { return max(1, (procs+1)/2) }

// eventLoops returns the Server's loops, starting them on first use, or nil
// if connections get goroutines of their own. Called with s.mu held.
func (s *Server) eventLoops() *loopSet {
	if s.loops != nil || s.noLoop {
		return s.loops
	}
	be, ok := s.Backend.(BatchBackend)
	if !ok || s.NoEventLoop {
		s.noLoop = true
		return nil
	}
	ls := &loopSet{}
	n := s.EventLoops
	if n <= 0 {
		n = loopsFor(runtime.GOMAXPROCS(0))
	}
	for range n {
		p, err := newPoller()
		if err != nil {
			break
		}
		lp := &loop{s: s, be: be, p: p, conns: make(map[int32]*lconn)}
		ls.all = append(ls.all, lp)
		s.wg.Add(1)
		go lp.run()
	}
	if len(ls.all) == 0 {
		s.noLoop = true
		return nil
	}
	s.loops = ls
	return ls
}

// add hands nc to one of the loops and reports whether it took it.
func (ls *loopSet) add(nc net.Conn) bool {
	return ls.all[ls.next.Add(1)%uint32(len(ls.all))].add(nc, true)
}

// adopt gives a loop the registered connection nc back from a goroutine
// that served it, and reports whether it took it.
func (ls *loopSet) adopt(nc net.Conn) bool {
	return ls.all[ls.next.Add(1)%uint32(len(ls.all))].add(nc, false)
}

// close stops the loops; each closes the connections it still holds.
func (ls *loopSet) close() {
	for _, lp := range ls.all {
		lp.p.close()
	}
}

// add hands nc to the loop and reports whether it took it; if not, the
// caller serves nc itself. A new connection is registered with the Server
// first (register); one coming back from a goroutine already is.
func (lp *loop) add(nc net.Conn, register bool) bool {
	sc, ok := nc.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	rc.Control(func(f uintptr) { fd = int(f) })
	if fd < 0 || int(int32(fd)) != fd {
		return false
	}
	lc := &lconn{lp: lp, nc: nc, fd: int32(fd)}
	if !register {
		lc.proto = protoText // only a text connection comes back (errBackToLoop)
	}
	if !lc.rd.Init(nc) || !lc.wr.Init(nc) {
		return false
	}
	lc.getDone, lc.setDone = lc.finishGet, lc.finishSet
	s := lp.s
	if register && !s.register(nc) {
		return true // closed: register closed nc
	}
	lp.mu.Lock()
	lp.conns[lc.fd] = lc
	lp.mu.Unlock()
	if err := lp.p.add(fd); err != nil {
		lp.mu.Lock()
		delete(lp.conns, lc.fd)
		lp.mu.Unlock()
		if register {
			s.unregister(nc)
		}
		return false
	}
	return true
}

// run is the loop goroutine.
func (lp *loop) run() {
	defer lp.s.wg.Done()
	b := lp.be.NewBatch()
	for {
		fds, err := lp.p.wait()
		if err != nil {
			lp.shutdown(err)
			return
		}
		for _, fd := range fds {
			lp.mu.Lock()
			lc := lp.conns[fd]
			lp.mu.Unlock()
			if lc != nil {
				lc.readable(b)
			}
		}
		b.Flush()
	}
}

// shutdown closes every connection still in the loop (Server.Close closed
// their sockets already, which took them out of the poller).
func (lp *loop) shutdown(err error) {
	lp.mu.Lock()
	all := make([]*lconn, 0, len(lp.conns))
	for _, lc := range lp.conns {
		all = append(all, lc)
	}
	lp.mu.Unlock()
	if !lp.s.isClosed() {
		lp.s.logf("memcache: event loop stopped: %v", err)
	}
	for _, lc := range all {
		lc.mu.Lock()
		if lc.pending {
			lc.closing = true
		} else {
			lc.closeLocked()
		}
		lc.mu.Unlock()
	}
}

// readable reads what lc's socket has and starts the request it completes,
// or hands lc to a goroutine.
func (lc *lconn) readable(b Batch) {
	lc.mu.Lock()
	if lc.out {
		lc.mu.Unlock()
		return
	}
	if lc.pending {
		// Input before the completion finished: the reply may be out
		// already (the client was quick), or the client pipelines. Either
		// way it waits until the completion is done, which turns the
		// reports back on.
		if lc.lp.p.arm(int(lc.fd), false) != nil {
			lc.handoffLocked()
		} else {
			lc.more = true
		}
		lc.mu.Unlock()
		return
	}
	if lc.buf == nil {
		lc.buf = getBuf(loopBufSmall)
	}
	buf := *lc.buf
	n, err := lc.rd.TryRead(buf[lc.n:])
	lc.lp.s.st.bytesRead.Add(uint64(max(n, 0)))
	switch {
	case err == rawio.ErrWouldBlock:
		lc.releaseIfEmpty()
		lc.mu.Unlock()
		return
	case err != nil || n == 0: // an error, or the client closed
		lc.closeLocked()
		lc.mu.Unlock()
		return
	}
	lc.n += n
	lc.req = parseLoopReq(buf[:lc.n], lc.lp.s)
	switch bin := buf[0] == binReqMagic; {
	case lc.proto == protoUnknown && bin:
		lc.proto = protoBinary
	case lc.proto == protoUnknown:
		lc.proto = protoText
	case bin != (lc.proto == protoBinary):
		// The other protocol's first byte: a text command, or a bad
		// packet, served the ordinary way in the connection's protocol.
		lc.req.kind = reqOther
	}
	switch {
	case lc.req.kind == reqIncomplete && lc.n < len(buf):
		lc.mu.Unlock() // wait for the rest
		return
	case lc.req.kind == reqIncomplete && len(buf) < loopBufMax:
		nb := getBuf(loopBufMax)
		copy(*nb, buf[:lc.n])
		putBuf(lc.buf)
		lc.buf = nb
		lc.mu.Unlock()
		return
	case lc.req.kind == reqIncomplete, lc.req.kind == reqOther, lc.req.n != lc.n:
		started := lc.handoffLocked()
		lc.mu.Unlock()
		// Let the goroutine run before this loop serves anything else: a
		// goroutine started last runs first otherwise (the scheduler's
		// runnext slot), and requests that arrived together on two
		// connections would reach the backend in reverse order (two
		// clients racing a cas for one item: the second one sent won).
		for started != nil && !started.Load() {
			runtime.Gosched()
		}
		return
	}
	lc.pending = true
	req := &lc.req
	lc.mu.Unlock()

	var started bool
	if req.kind == reqGet {
		started = b.GetAsync(req.key, req.withCAS, lc.getDone)
	} else {
		started = b.SetAsync(&req.it, lc.setDone)
	}
	if !started {
		lc.mu.Lock()
		lc.pending = false
		lc.handoffLocked()
		lc.mu.Unlock()
	}
}

// finishGet is the completion of a get the loop started.
func (lc *lconn) finishGet(it *Item, err error) {
	st := &lc.lp.s.st
	var b []byte
	switch {
	case err == nil:
		st.cmdGet.Add(1)
		st.getHits.Add(1)
		lc.lp.s.detail.note(lc.req.key, detailHit)
		lc.reply = getBuf(len(lc.req.key) + len(it.Value) + 64)
		if lc.req.binary {
			b = appendBinGet((*lc.reply)[:0], &lc.req, it)
		} else {
			b = appendValueReply((*lc.reply)[:0], lc.req.key, it, lc.req.withCAS)
			b = append(b, "END\r\n"...)
		}
	case errors.Is(err, ErrNotFound):
		st.cmdGet.Add(1)
		st.getMisses.Add(1)
		lc.lp.s.detail.note(lc.req.key, detailGet)
		b = endReply
		if lc.req.binary {
			lc.reply = getBuf(len(lc.req.key) + 64)
			b = appendBinGet((*lc.reply)[:0], &lc.req, nil)
		}
	default:
		lc.retry()
		return
	}
	lc.send(b)
}

// finishSet is the completion of a set the loop started.
func (lc *lconn) finishSet(cas uint64, err error) {
	if err == nil {
		lc.lp.s.detail.note(lc.req.it.Key, detailSet)
	}
	switch {
	case err != nil:
		lc.retry()
	case lc.req.noreply:
		lc.lp.s.st.cmdSet.Add(1)
		lc.finish(nil)
	case lc.req.binary:
		lc.lp.s.st.cmdSet.Add(1)
		lc.reply = getBuf(24)
		lc.send(appendBinHeader((*lc.reply)[:0], &lc.req, stOK, 0, 0, 0, cas))
	default:
		lc.lp.s.st.cmdSet.Add(1)
		lc.send(storedReply)
	}
}

// retry hands lc, its request still unconsumed, to a goroutine, which
// serves the request again with the blocking Backend methods (their
// fail-over and retries included).
func (lc *lconn) retry() {
	lc.mu.Lock()
	lc.pending = false
	lc.handoffLocked()
	lc.mu.Unlock()
}

// send writes the reply b with one attempt that does not block; a
// goroutine of its own writes what the socket did not take.
func (lc *lconn) send(b []byte) {
	n, ok := lc.wr.TryWrite(b)
	lc.lp.s.st.bytesWritten.Add(uint64(n))
	if ok && n == len(b) {
		lc.finish(nil)
		return
	}
	go func() {
		m, err := lc.lp.s.writeStalled(nil, lc.nc, lc.nc.Write, b[n:], 0)
		lc.lp.s.st.bytesWritten.Add(uint64(m))
		lc.finish(err)
	}()
}

// finish ends the pending request once its reply is written (werr: how
// the write went).
func (lc *lconn) finish(werr error) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.pending = false
	if lc.reply != nil {
		putBuf(lc.reply)
		lc.reply = nil
	}
	// The loop starts a request only when it is all the input there is.
	lc.n = 0
	lc.releaseIfEmpty()
	switch {
	case werr != nil || lc.closing:
		lc.closeLocked()
	case lc.handoff:
		lc.handoffLocked()
	case lc.more:
		lc.more = false
		if lc.lp.p.arm(int(lc.fd), true) != nil {
			lc.handoffLocked()
		}
	}
}

// releaseIfEmpty gives back the input buffer of a connection that has no
// unconsumed input. lc.mu is held.
func (lc *lconn) releaseIfEmpty() {
	if lc.n == 0 && lc.buf != nil {
		putBuf(lc.buf)
		lc.buf = nil
	}
}

// detachLocked takes lc out of the loop. lc.mu is held.
func (lc *lconn) detachLocked() {
	if lc.out {
		return
	}
	lc.out = true
	lc.lp.p.del(int(lc.fd))
	lc.lp.mu.Lock()
	if lc.lp.conns[lc.fd] == lc {
		delete(lc.lp.conns, lc.fd)
	}
	lc.lp.mu.Unlock()
}

// handoffLocked gives lc, with its unconsumed input, to a goroutine running
// the ordinary connection code; if a request is pending, that happens when
// it completes. It returns a flag the goroutine sets once it runs, or nil
// if it started none. lc.mu is held.
func (lc *lconn) handoffLocked() *atomic.Bool {
	lc.detachLocked()
	if lc.pending {
		lc.handoff = true
		return nil
	}
	var pre []byte
	if lc.n > 0 {
		pre = bytes.Clone((*lc.buf)[:lc.n])
	}
	lc.n = 0
	lc.releaseIfEmpty()
	s := lc.lp.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		lc.closeLocked()
		return nil
	}
	s.wg.Add(1)
	s.mu.Unlock()
	lc.gone = true
	nc, proto := lc.nc, lc.proto
	started := new(atomic.Bool)
	go func() {
		defer s.wg.Done()
		started.Store(true)
		s.serveOwned(nc, pre, proto)
	}()
	return started
}

// closeLocked closes lc's connection. lc.mu is held and no request is
// pending.
func (lc *lconn) closeLocked() {
	if lc.gone {
		return
	}
	lc.detachLocked()
	lc.gone = true
	lc.n = 0
	lc.releaseIfEmpty()
	lc.nc.Close()
	lc.lp.s.unregister(lc.nc)
}

// Request kinds the loop tells apart.
const (
	reqIncomplete = iota // not all of it has arrived
	reqOther             // anything the loop does not serve itself
	reqGet
	reqSet
)

// loopReq is a request the loop parsed. Its slices point into the input.
type loopReq struct {
	kind    int
	n       int // bytes of input it takes
	key     []byte
	withCAS bool // gets
	noreply bool // set
	it      Item // set

	binary bool   // the binary protocol (see loopbin.go)
	op     byte   // binary: the opcode
	opaque uint32 // binary: echoed in the response
}

// parseLoopReq parses the request at the start of b if it is a get of one
// key or a set, in the one spelling the loop serves: single spaces, plain
// decimal numbers, a key without spaces or line-end bytes. Anything
// else, including every malformed request, is reqOther, so that the
// ordinary code gives its exact reply.
func parseLoopReq(b []byte, s *Server) loopReq {
	r := loopReq{kind: reqOther}
	if len(b) > 0 && b[0] == binReqMagic {
		return parseLoopBin(b, s)
	}
	if !loopPrefix(b) {
		return r // a command the loop does not serve
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(b) <= loopMaxLine {
			r.kind = reqIncomplete
		}
		return r
	}
	line := b[:i] // memcached takes "\n" as well as "\r\n" for a line end
	if i > 0 && b[i-1] == '\r' {
		line = b[:i-1]
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return r // a NUL ends the line: serveText cuts it there
	}
	switch {
	case bytes.HasPrefix(line, []byte("get ")):
		r.key = line[4:]
	case bytes.HasPrefix(line, []byte("gets ")):
		r.key, r.withCAS = line[5:], true
	case bytes.HasPrefix(line, []byte("set ")):
		return parseLoopSet(b, line[4:], i+1, s)
	default:
		return r
	}
	if !loopKey(r.key) {
		return r
	}
	r.kind, r.n = reqGet, i+1
	return r
}

// parseLoopSet parses the rest of a set line (args) whose data block
// starts at b[data:].
func parseLoopSet(b, args []byte, data int, s *Server) loopReq {
	r := loopReq{kind: reqOther}
	var f [5][]byte
	n := 0
	for len(args) > 0 && n < len(f) {
		j := bytes.IndexByte(args, ' ')
		if j < 0 {
			j = len(args)
		}
		f[n] = args[:j]
		n++
		if j == len(args) {
			args = nil
		} else if args = args[j+1:]; len(args) == 0 {
			return r // a trailing space
		}
	}
	if len(args) > 0 || n < 4 || (n == 5 && string(f[4]) != "noreply") {
		return r
	}
	flags, ok1 := loopNum(f[1])
	exp, ok2 := loopNum(f[2])
	vlen, ok3 := loopNum(f[3])
	if !loopKey(f[0]) || !ok1 || !ok2 || !ok3 || ItemSize(len(f[0]), int64(vlen), uint32(flags)) > int64(s.maxItem()) {
		return r
	}
	end := data + vlen + 2
	if end > loopBufMax {
		return r
	}
	if end > len(b) {
		r.kind = reqIncomplete
		return r
	}
	if b[end-2] != '\r' || b[end-1] != '\n' {
		return r
	}
	r.kind, r.n, r.noreply = reqSet, end, n == 5
	r.it = Item{Key: f[0], Value: b[data : end-2], Flags: uint32(flags), Exptime: s.normExptime(int64(exp))}
	return r
}

// loopPrefix reports whether b starts like a request the loop serves.
func loopPrefix(b []byte) bool {
	for _, p := range [...]string{"get ", "gets ", "set "} {
		n := min(len(b), len(p))
		if string(b[:n]) == p[:n] {
			return true
		}
	}
	return false
}

// loopKey reports whether k is a key the loop serves: 1 to 250 bytes, any
// but space (the ordinary parser's separator), "\r" and "\n". Keys of
// control or non-ASCII bytes are served here as the ordinary code serves
// them (load generators such as memaslap use them).
func loopKey(k []byte) bool {
	if len(k) == 0 || len(k) > maxKeyLen {
		return false
	}
	for _, c := range k {
		if c == ' ' || c == '\r' || c == '\n' {
			return false
		}
	}
	return true
}

// loopNum parses 1 to 9 decimal digits.
func loopNum(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}
