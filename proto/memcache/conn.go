package memcache

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"

	"kumofs/internal/rawio"
)

const maxTokens = 24

var (
	errQuit        = errors.New("memcache: quit")
	errLineTooLong = errors.New("memcache: line too long")
	errBadMagic    = errors.New("memcache: bad binary magic")
	errBadPacket   = errors.New("memcache: invalid binary packet")
	// errBackToLoop ends a connection's goroutine without closing it: the
	// event loop serves it from here on.
	errBackToLoop = errors.New("memcache: back to the event loop")
)

// conn is one client connection. Only its own goroutine touches it.
type conn struct {
	s   *Server
	nc  net.Conn
	ctx context.Context
	br  *bufio.Reader
	bw  *bufio.Writer
	fr  flushReader
	// read and write are nc's Read and Write, through rawio where nc is
	// a socket (see there: they do not wake the runtime's sysmon).
	read  func([]byte) (int, error)
	write func([]byte) (int, error)
	rr    rawio.Reader
	rw    rawio.Writer
	raw   bool // rw is set up: writes go through TryWrite first
	// werr is the first error writing to the client; set by countWriter,
	// read by the conn goroutine while no completion owns bw.
	werr  error
	stall stall // the record of a write the client is not reading
	// halfClosed: the client sent no more (see resetWithPipeline); its
	// buffered requests are served one at a time.
	halfClosed bool

	tok    [maxTokens][]byte
	keybuf [maxKeyLen]byte
	in     *[]byte // request data (values, binary bodies)
	inHeld int64   // what c.in counts in s.bodyBytes (0 while at most 32 KiB)
	out    *[]byte // values read from the backend
	long   []byte  // long get lines; nil unless needed (its capacity is counted in s.longBytes)
	it     Item
	hdr    [24]byte // binary request header
	rhdr   [24]byte // binary response header
	scr    [64]byte // scratch for numbers and extras
	b64key [maxKeyLen]byte
	ret    []byte // ms return flags; grows to the longest seen

	noreply bool

	// back, if set, takes the connection back into the event loop when it
	// waits for a new text request with nothing buffered (see
	// errBackToLoop) after a lone get or set (lone: the last request went
	// the AsyncBackend way, as the loop would have served it; a client
	// that pipelines or sends multi-key gets stays, rather than moving in
	// and out each time). atStart is set while serveText waits for one.
	back    bool
	atStart bool
	lone    bool

	// proto, once known (protoText, protoBinary), is the connection's
	// protocol: memcached takes it from a connection's first byte and
	// keeps it, so a text connection's line that starts with the binary
	// magic is a text command, and a binary connection's packet that does
	// not is a bad packet. protoUnknown: taken from the next byte.
	proto byte

	as asyncState // see AsyncBackend
}

// flushReader flushes pending replies before every read from the network,
// so replies are written exactly when the input is drained and never while
// more pipelined requests are buffered.
type flushReader struct {
	c *conn
}

func (f flushReader) Read(p []byte) (int, error) {
	c := f.c
	if !c.as.pending { // a pending completion owns bw
		if c.werr != nil {
			// A reply could not be written (a large one goes around the
			// buffer, which then holds nothing and no error to flush):
			// the client is gone, serve none of its remaining requests.
			return 0, c.werr
		}
		if c.bw.Buffered() > 0 {
			if err := c.bw.Flush(); err != nil {
				return 0, err
			}
		}
	}
	if c.back && c.atStart && c.lone && c.br.Buffered() == 0 {
		// Between requests with nothing read ahead: once the last reply
		// is written, the loop can take over without losing a byte.
		if err := c.settle(); err != nil {
			return 0, err
		}
		return 0, errBackToLoop
	}
	n, err := c.read(p)
	c.s.st.bytesRead.Add(uint64(n))
	return n, err
}

// countWriter writes to the connection and counts the bytes for stats.
type countWriter struct {
	c *conn
}

func (w countWriter) Write(p []byte) (int, error) {
	c := w.c
	if !c.raw {
		n, err := c.write(p)
		c.s.st.bytesWritten.Add(uint64(n))
		if err != nil && c.werr == nil {
			c.werr = err
		}
		return n, err
	}
	n, ok := c.rw.TryWrite(p)
	if ok && n == len(p) {
		c.s.st.bytesWritten.Add(uint64(n))
		return n, nil
	}
	// The client is not reading as fast as it asks: wait for it, counted
	// as stalled with what the connection holds meanwhile.
	m, err := c.s.writeStalled(&c.stall, c.nc, c.write, p[n:], c.held())
	c.s.st.bytesWritten.Add(uint64(n + m))
	if err != nil && c.werr == nil {
		c.werr = err
	}
	return n + m, err
}

// stallBody is the size from which a request's data block that has not
// all arrived counts as stalled while the connection waits for it.
const stallBody = 64 << 10

// readBody reads a request's data block (a value with its line end, or a
// binary body) into data, a buffer of c.in. A large one whose bytes have
// not all arrived counts as stalled while it waits (see stall.go).
func (c *conn) readBody(data []byte) error {
	if len(data) < stallBody || c.br.Buffered() >= len(data) || c.s.maxStalled() < 0 {
		_, err := io.ReadFull(c.br, data)
		return err
	}
	st := &c.stall
	if c.as.pending {
		st = nil // a completion writing the last reply may use c.stall
	}
	_, err := c.s.stalled(st, c.nc, c.held(), func() (int, error) { return io.ReadFull(c.br, data) })
	return err
}

// held is roughly what the connection's buffers hold besides a reply
// being written: the values of a get window and the request and value
// buffers.
func (c *conn) held() int64 {
	n := int64(cap(*c.in) + cap(*c.out) + writeBufSize)
	if m := c.as.many; m != nil {
		for i := 0; i < m.hi; i++ {
			if m.slots[i].buf != nil {
				n += int64(cap(*m.slots[i].buf))
			}
		}
	}
	return n
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, ctx: s.ctx}
	c.read, c.write = nc.Read, nc.Write
	if c.rr.Init(nc) {
		c.read = c.rr.Read
	}
	if c.rw.Init(nc) {
		c.write, c.raw = c.rw.Write, true
	}
	c.fr = flushReader{c}
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(c.fr)
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(countWriter{c})
	c.in = getBuf(0)
	c.out = getBuf(0)
	c.initAsync()
	return c
}

func (c *conn) release() {
	c.releaseAsync()
	c.br.Reset(nil)
	readerPool.Put(c.br)
	c.bw.Reset(nil)
	writerPool.Put(c.bw)
	c.dropIn()
	putBuf(c.out)
	c.dropLong()
	c.in, c.out, c.br, c.bw = nil, nil, nil, nil
}

func (c *conn) serve() error {
	if c.proto == protoUnknown {
		first, err := c.br.Peek(1)
		if err != nil {
			return err
		}
		c.proto = protoText
		if first[0] == binReqMagic {
			c.proto = protoBinary
		}
	}
	var err error
	if c.proto == protoBinary {
		err = c.serveBinary()
	} else {
		err = c.serveText()
	}
	// A reply still being written when the client left: its error, like
	// that of the final flush below, does not matter then.
	c.settle()
	if err == errBackToLoop {
		return err // everything is written: flushReader checked
	}
	if errors.Is(err, errQuit) || errors.Is(err, io.EOF) {
		c.bw.Flush()
		return err
	}
	if ferr := c.bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// inBuf returns c.in with length n, growing it through the pools, or nil
// when growing it would take the large request bodies of all connections
// past maxBodies for longer than the body wait: a burst of large values
// from many clients waits for the bodies before it to be stored (as
// memcached, which has the memory, stores them all), while connections
// that start large values and stop still cannot hold more than the budget.
// Only the goroutine path calls it (the event loop hands such requests
// over), so the wait holds up no other connection.
func (c *conn) inBuf(n int) []byte {
	if b := c.tryInBuf(n); b != nil {
		return b
	}
	return c.s.waitBodies(c, n)
}

// tryInBuf is inBuf without the wait.
func (c *conn) tryInBuf(n int) []byte {
	if cap(*c.in) < n {
		if n > 32<<10 {
			limit := c.s.maxBodies
			if limit == 0 {
				limit = maxBodies
			}
			total := c.s.bodyBytes.Add(int64(n) - c.inHeld)
			if total > limit {
				c.s.bodyBytes.Add(c.inHeld - int64(n))
				return nil
			}
			if total > c.s.burstLimit() && !c.s.bodyBurst.Load() {
				c.s.bodyBurst.Store(true)
			}
			c.inHeld = int64(n)
		}
		putBuf(c.in)
		c.in = getBuf(n)
	}
	return (*c.in)[:n]
}

// dropIn gives c.in back to its pool, and its share of maxBodies.
func (c *conn) dropIn() {
	putBuf(c.in)
	c.in = nil
	if c.inHeld != 0 {
		if c.s.bodyBytes.Add(-c.inHeld) == 0 && c.s.bodyBurst.Load() && c.s.bodyBurst.Swap(false) {
			c.s.endBurst()
		}
		c.s.bodiesFreed()
	}
	c.inHeld = 0
}

// shrink gives back buffers grown by a large request so an idle
// connection holds only small ones.
//
// A pending asynchronous request's completion may still use c.it, whose
// value is in c.in, and c.out (see fallback): callers settle first, and
// shrink keeps both while a request is pending.
func (c *conn) shrink() {
	if c.as.pending {
		return
	}
	if cap(*c.in) > 32<<10 {
		c.dropIn()
		c.in = getBuf(0)
	}
	if cap(*c.out) > 32<<10 {
		putBuf(c.out)
		c.out = getBuf(0)
	}
	if cap(c.long) > 0 {
		c.dropLong()
	}
}

// get calls Backend.Get (or GetAndTouch) into c.it with c.out as the
// destination. c.it.Value is valid until the next backend call.
func (c *conn) get(key []byte, touch bool, exptime int64) error {
	var err error
	dst := (*c.out)[:0]
	if touch {
		err = c.s.Backend.GetAndTouch(c.ctx, key, exptime, dst, &c.it)
	} else {
		err = c.s.Backend.Get(c.ctx, key, dst, &c.it)
	}
	if err == nil && len(c.it.Value) > cap(*c.out) {
		// The value did not fit: take a pooled buffer of its size class for
		// the next read (never adopt the backend's array, which it may own).
		putBuf(c.out)
		c.out = getBuf(len(c.it.Value))
	}
	return err
}

// errPeerReset ends a connection whose client reset it while requests were
// still buffered behind the one at hand: none of them is served. Not
// logged.
var errPeerReset = errors.New("memcache: the client reset the connection")

// resetWithPipeline reports, when more input is buffered behind the
// request just read (the client pipelines), whether the client has reset
// the connection: its replies cannot be written, so serving the requests
// would only cost work, such as fetching large values from the servers for
// a client that sent a pipeline of gets and left. A client that closed
// without a reset (or shut down its sending side only, as `nc -N` does,
// and still reads) is served its requests one at a time from then on
// (halfClosed: no windows), so that once its first reply is written a
// peer that closed for good answers with a reset, which the next look
// finds. A lone request needs no look: its reply's write finds out. One
// non-blocking peek per pipelined request or window.
func (c *conn) resetWithPipeline() bool {
	if c.br.Buffered() == 0 {
		return false
	}
	reset, eof := c.rr.PeerState()
	if eof {
		c.halfClosed = true
	}
	return reset
}

// windowed reports whether the request at hand may start a pipelined
// window (see window.go): the backend serves batches, more requests are
// buffered, and the client has not closed its side (resetWithPipeline).
func (c *conn) windowed() bool {
	return c.as.be != nil && c.br.Buffered() > 0 && !c.halfClosed
}

// discard swallows n bytes of input without buffering them.
func (c *conn) discard(n int64) error {
	for n > 0 {
		k := int(min(n, 1<<30))
		d, err := c.br.Discard(k)
		n -= int64(d)
		if err != nil {
			return err
		}
	}
	return nil
}

// readLine returns the next line without its "\n" or "\r\n". It is valid
// until the next read from c.br.
func (c *conn) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	c.atStart = false // a long line's next reads are not between requests
	if err == nil {
		return trimEOL(line), nil
	}
	if err != bufio.ErrBufferFull {
		return nil, err
	}
	if !isMultiKeyLine(line) {
		return nil, errLineTooLong
	}
	c.long = c.long[:0]
	for {
		if !c.growLong(len(line)) {
			return nil, errLineTooLong
		}
		c.long = append(c.long, line...)
		if err == nil {
			return trimEOL(c.long), nil
		}
		if err != bufio.ErrBufferFull {
			return nil, err
		}
		line, err = c.br.ReadSlice('\n')
	}
}

// growLong makes room for n more bytes in c.long and reports whether the
// line stays within maxLongLine and every connection's long lines within
// maxLongLines.
func (c *conn) growLong(n int) bool {
	need := len(c.long) + n
	if need > maxLongLine {
		return false
	}
	if need <= cap(c.long) {
		return true
	}
	size := min(max(2*cap(c.long), need, 64<<10), maxLongLine)
	if c.s.longBytes.Add(int64(size-cap(c.long))) > maxLongLines {
		c.s.longBytes.Add(-int64(size - cap(c.long)))
		return false
	}
	nl := make([]byte, len(c.long), size)
	copy(nl, c.long)
	c.long = nl
	return true
}

// dropLong gives up c.long and its share of maxLongLines.
func (c *conn) dropLong() {
	c.s.longBytes.Add(-int64(cap(c.long)))
	c.long = nil
}

func isMultiKeyLine(b []byte) bool {
	for _, p := range [...]string{"get ", "gets ", "gat ", "gats "} {
		if len(b) >= len(p) && string(b[:len(p)]) == p {
			return true
		}
	}
	return false
}

func trimEOL(b []byte) []byte {
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return b
}

// tokenize splits line at runs of spaces into c.tok and returns the count;
// maxTokens+1 means there were more.
func (c *conn) tokenize(line []byte) int {
	n := 0
	i := 0
	for {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i == len(line) {
			return n
		}
		j := i
		for j < len(line) && line[j] != ' ' {
			j++
		}
		if n == maxTokens {
			return n + 1
		}
		c.tok[n] = line[i:j]
		n++
		i = j
	}
}

// nextToken returns the first token of b and the rest.
func nextToken(b []byte) (tok, rest []byte) {
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' {
		j++
	}
	return b[i:j], b[j:]
}

// parseUint parses a decimal uint64 of digits only.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		d := uint64(ch - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// parseInt32 parses an optionally negative decimal within int32.
func parseInt32(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	v, ok := parseUint(b)
	if !ok || v > 1<<31 || (!neg && v == 1<<31) {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

// parseInt64 parses an optionally negative decimal int64.
func parseInt64(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	v, ok := parseUint(b)
	if !ok || v > 1<<63 || (!neg && v == 1<<63) {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

// reserve makes sure at least n bytes are free in the write buffer (for n up
// to its size) and returns the empty available slice to append to.
func (c *conn) reserve(n int) []byte {
	if c.bw.Available() < n {
		c.bw.Flush()
	}
	return c.bw.AvailableBuffer()
}

func (c *conn) writeString(s string) {
	if c.noreply {
		return
	}
	c.bw.WriteString(s)
}

func appendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }
func appendInt(b []byte, v int64) []byte   { return strconv.AppendInt(b, v, 10) }

// serverError writes "SERVER_ERROR <msg>" for an unexpected backend error,
// with line breaks removed.
func (c *conn) serverError(err error) {
	if c.noreply {
		return
	}
	if errors.Is(err, ErrNoMemory) {
		c.bw.WriteString(outOfMemory)
		return
	}
	msg := []byte(err.Error())
	for i, ch := range msg {
		if ch == '\r' || ch == '\n' {
			msg[i] = ' '
		}
	}
	c.bw.WriteString("SERVER_ERROR ")
	c.bw.Write(msg)
	c.bw.WriteString("\r\n")
}

// A connection's protocol (conn.proto, lconn.proto).
const (
	protoUnknown = iota
	protoText
	protoBinary
)
