package memcache

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"kumofs/internal/loglimit"
)

// DefaultVersion is what `version` reports unless Server.Version is set.
// libmemcached parses it as 1.6.18.
const DefaultVersion = "1.6.18-kumo"

// DefaultMaxItemSize is the default item size limit (memcached's -I 1m).
const DefaultMaxItemSize = 1 << 20

// itemOverhead is what memcached 1.6 (64-bit) counts against -I besides
// key and value: its item header (48 bytes), the key's NUL, the value's
// "\r\n" and the CAS unique; nonzero client flags take flagsOverhead more.
// So a 1 MiB value does not fit, and the largest that does is the same as
// in memcached.
const (
	itemOverhead  = 48 + 1 + 2 + 8
	flagsOverhead = 4
)

// ItemSize is the size memcached gives an item of a keylen-byte key, a
// vlen-byte value and client flags, to compare with -I. (kumo/wire counts
// the same for the servers, which refuse appends that outgrow it.)
func ItemSize(keylen int, vlen int64, flags uint32) int64 {
	n := vlen + int64(keylen) + itemOverhead
	if flags != 0 {
		n += flagsOverhead
	}
	return n
}

const (
	maxKeyLen    = 250
	readBufSize  = 16 << 10 // longest command line except multi-key reads
	writeBufSize = 16 << 10
	// maxLongLine is the longest get/gets/gat/gats line (at least 16,000
	// keys of 250 bytes); all connections together hold at most
	// maxLongLines bytes of such lines. memcached buffers a multi-get
	// line of any length.
	maxLongLine  = 4 << 20
	maxLongLines = 256 << 20
	// maxBodies is the most that all connections together hold of request
	// bodies (values, binary packets) over 32 KiB each. A request that
	// would take them past it is refused as memcached refuses one it has
	// no memory for ("SERVER_ERROR out of memory storing object"), its
	// body swallowed: connections that send the start of large values and
	// stop cannot take the process's memory.
	maxBodies   = 256 << 20
	relativeMax = 60 * 60 * 24 * 30
)

// Server serves the memcached protocols over a Backend. Set the fields
// before calling Serve; do not change them afterwards.
type Server struct {
	Backend     Backend // required
	MaxItemSize int     // value+key+48 limit; 0 = DefaultMaxItemSize
	Version     string  // "" = DefaultVersion
	MaxConns    int     // 0 = unlimited; above it new connections get an error and are closed
	// NoEventLoop makes Serve give every connection a goroutine of its own
	// even where the event loop could serve it (see BatchBackend).
	NoEventLoop bool
	// EventLoops is how many event loops serve the connections; 0 means
	// one per two Ps (right when the backend's completions write the
	// replies on goroutines of their own; a backend that answers in place,
	// as an embedded gateway's local reads, wants more: kumo-server runs
	// two per P).
	EventLoops int
	// MaxStalledBytes bounds what connections whose clients do not read
	// their replies may hold: above it, the ones stalled longest are
	// closed (see stall.go). 0 = DefaultMaxStalledBytes, negative = no
	// limit.
	MaxStalledBytes int64
	// MaxFetchBytes bounds what windows of gets of large values (over
	// 64 KiB expected) fetch at once across all connections, so that
	// the gets of other clients do not wait behind them (see
	// fetchbudget.go). 0 = DefaultMaxFetchBytes, negative = no limit.
	MaxFetchBytes int64
	// Logf, if set, logs connection-level trouble (never per request).
	Logf func(format string, args ...any)
	// Now, if set, replaces time.Now (exptime normalisation, stats time).
	Now func() time.Time

	initOnce sync.Once
	started  time.Time
	ctx      context.Context
	cancel   context.CancelFunc

	mu        sync.Mutex // protects listeners, conns, connPeak, closed, loops, noLoop
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	connPeak  int // most conns at once since the last storm (see unregister)
	closed    bool
	loops     *loopSet       // the event loops, once started
	noLoop    bool           // connections get goroutines of their own
	wg        sync.WaitGroup // connection and loop goroutines started by Serve

	st       counters
	detail   prefixStats   // stats detail
	stalls   stallSet      // writes the client is not reading
	stallAge time.Duration // 0 = defaultStallAge; tests shorten it
	fetch    fetchBudget   // what windows of large values fetch at once

	longBytes atomic.Int64 // capacity of every connection's long line (conn.long)
	bodyBytes atomic.Int64 // what connections hold of large request bodies (conn.inHeld)
	maxBodies int64        // 0 = maxBodies; tests lower it
	// bodyBurst is set when bodyBytes passed burstBodies; the connection
	// that takes bodyBytes back to 0 clears it and has the memory the
	// burst left (its bodies and the copies the backend made of them)
	// returned to the system (see endBurst).
	bodyBurst   atomic.Bool
	burstBodies int64 // 0 = burstBodies; tests lower it
	stormConns  int   // 0 = stormConns; tests lower it
	bodyWait    bodyWaiters
	bodyWaitFor time.Duration // 0 = defaultBodyWait, negative = refuse at once; tests change it

	// connLog and acceptLog limit the lines about connections that
	// failed and about failed accepts (see internal/loglimit).
	connLog, acceptLog *loglimit.Limiter
}

type counters struct {
	currConns, totalConns, rejectedConns             atomic.Int64
	cmdGet, cmdSet, cmdFlush, cmdTouch, cmdMeta      atomic.Uint64
	getHits, getMisses                               atomic.Uint64
	deleteHits, deleteMisses                         atomic.Uint64
	incrHits, incrMisses, decrHits, decrMisses       atomic.Uint64
	casHits, casMisses, casBadval                    atomic.Uint64
	touchHits, touchMisses, storeTooLarge, protoErrs atomic.Uint64
	bytesRead, bytesWritten                          atomic.Uint64 // client traffic
}

// Conns returns the client connections open now and accepted since start.
func (s *Server) Conns() (current, total int64) {
	return s.st.currConns.Load(), s.st.totalConns.Load()
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.started = s.now()
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[net.Conn]struct{})
		s.connLog, s.acceptLog = loglimit.New(s.Logf), loglimit.New(s.Logf)
	})
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) maxItem() int {
	if s.MaxItemSize > 0 {
		return s.MaxItemSize
	}
	return DefaultMaxItemSize
}

func (s *Server) version() string {
	if s.Version != "" {
		return s.Version
	}
	return DefaultVersion
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// Serve accepts connections on l and serves each on its own goroutine until
// Close is called (it then returns ErrServerClosed) or Accept fails.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	lp := s.eventLoops()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if retryAccept(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.acceptLog.Logf("memcache: accept: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if s.MaxConns > 0 && s.st.currConns.Load() >= int64(s.MaxConns) {
			s.st.rejectedConns.Add(1)
			nc.Write([]byte("ERROR Too many open connections\r\n"))
			nc.Close()
			continue
		}
		if lp != nil && lp.add(nc) {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.ServeConn(nc)
		}()
	}
}

// retryAccept reports whether an Accept error is one to wait out rather
// than stop serving on: a timeout, or a temporary condition such as running
// out of file descriptors (EMFILE, ENFILE), which passes once connections
// close.
func retryAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// ServeConn serves one connection on the calling goroutine until the peer
// closes it, sends quit, breaks the protocol beyond repair, or the server is
// closed. It closes nc.
func (s *Server) ServeConn(nc net.Conn) {
	if s.Backend == nil {
		panic("memcache: Server.Backend is nil")
	}
	s.init()
	if s.register(nc) {
		s.serveOwned(nc, nil, protoUnknown)
	}
}

// register counts nc among the open connections and reports true, or
// closes it and reports false if the server is closed.
func (s *Server) register(nc net.Conn) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return false
	}
	s.conns[nc] = struct{}{}
	s.connPeak = max(s.connPeak, len(s.conns))
	s.mu.Unlock()
	s.st.currConns.Add(1)
	s.st.totalConns.Add(1)
	return true
}

// unregister undoes register once nc is closed.
func (s *Server) unregister(nc net.Conn) {
	s.st.currConns.Add(-1)
	s.mu.Lock()
	delete(s.conns, nc)
	storm := s.connPeak >= s.stormSize() && len(s.conns) <= s.connPeak/2
	if storm {
		s.connPeak = len(s.conns)
	}
	s.mu.Unlock()
	if storm {
		// Half of a crowd of connections is gone: what their buffers held
		// (pooled, or garbage that an idle daemon would collect only at
		// its two-minute forced collections) goes back to the system a
		// little later, as after a burst of large values.
		s.endBurst()
	}
}

// stormConns is how many connections open at once make their leaving a
// storm whose end returns memory to the system (see unregister).
const stormConns = 1000

func (s *Server) stormSize() int {
	if s.stormConns > 0 {
		return s.stormConns
	}
	return stormConns
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// serveOwned serves the registered connection nc, whose first bytes of
// input, already read, are pre, and whose protocol is proto if already
// known (protoUnknown: taken from its first byte), then closes and
// unregisters it; or hands it (back) to an event loop, which then owns it.
func (s *Server) serveOwned(nc net.Conn, pre []byte, proto byte) {
	s.mu.Lock()
	ls := s.loops
	s.mu.Unlock()
	_, isTCP := nc.(*net.TCPConn)
	for {
		c := newConn(s, nc)
		c.proto = proto
		if len(pre) > 0 {
			c.br.Reset(&prefixReader{pre: pre, r: c.fr})
		}
		c.back = ls != nil && isTCP
		err := c.serve()
		c.release()
		if err == errBackToLoop {
			if ls.adopt(nc) {
				return
			}
			ls, pre, proto = nil, nil, c.proto // the loop would not take it: serve it here
			continue
		}
		nc.Close()
		s.unregister(nc)
		// A deadline only ever fires when the stall watchdog cut the
		// connection, which logs that itself.
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, errQuit) &&
			!errors.Is(err, os.ErrDeadlineExceeded) && err != errPeerReset {
			s.connLog.Logf("memcache: connection %v: %v", nc.RemoteAddr(), err)
		}
		return
	}
}

// prefixReader reads pre, then r.
type prefixReader struct {
	pre []byte
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// Close stops all listeners and connections and waits for the connection
// goroutines started by Serve to finish (callers of ServeConn return on
// their own once their connection is closed).
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for nc := range s.conns {
		nc.Close()
	}
	ls := s.loops
	s.mu.Unlock()
	if ls != nil {
		ls.close()
	}
	s.cancel()
	s.wg.Wait()
	return nil
}

// normExptime turns a client exptime into the Backend's absolute form.
func (s *Server) normExptime(e int64) int64 {
	switch {
	case e == 0:
		return 0
	case e < 0:
		return 1
	case e <= relativeMax:
		return s.now().Unix() + e
	default:
		return e
	}
}

// ttl is what mg's t flag shows: seconds left, -1 for never.
func (s *Server) ttl(exptime int64) int64 {
	if exptime == 0 {
		return -1
	}
	d := exptime - s.now().Unix()
	if d < 0 {
		d = 0
	}
	return d
}

// writeStats reports the server block plus the backend's stats.
func (s *Server) writeStats(ctx context.Context, add func(name, value string)) error {
	now := s.now()
	u := func(name string, v uint64) { add(name, strconv.FormatUint(v, 10)) }
	i := func(name string, v int64) { add(name, strconv.FormatInt(v, 10)) }
	i("pid", int64(os.Getpid()))
	i("uptime", int64(now.Sub(s.started)/time.Second))
	i("time", now.Unix())
	add("version", s.version())
	i("pointer_size", strconv.IntSize)
	if user, sys, ok := cpuTimes(); ok {
		add("rusage_user", seconds(user))
		add("rusage_system", seconds(sys))
	}
	i("max_connections", int64(s.MaxConns))
	i("curr_connections", s.st.currConns.Load())
	i("total_connections", s.st.totalConns.Load())
	i("rejected_connections", s.st.rejectedConns.Load())
	u("bytes_read", s.st.bytesRead.Load())
	u("bytes_written", s.st.bytesWritten.Load())
	u("cmd_get", s.st.cmdGet.Load())
	u("cmd_set", s.st.cmdSet.Load())
	u("cmd_flush", s.st.cmdFlush.Load())
	u("cmd_touch", s.st.cmdTouch.Load())
	u("cmd_meta", s.st.cmdMeta.Load())
	u("get_hits", s.st.getHits.Load())
	u("get_misses", s.st.getMisses.Load())
	u("delete_misses", s.st.deleteMisses.Load())
	u("delete_hits", s.st.deleteHits.Load())
	u("incr_misses", s.st.incrMisses.Load())
	u("incr_hits", s.st.incrHits.Load())
	u("decr_misses", s.st.decrMisses.Load())
	u("decr_hits", s.st.decrHits.Load())
	u("cas_misses", s.st.casMisses.Load())
	u("cas_hits", s.st.casHits.Load())
	u("cas_badval", s.st.casBadval.Load())
	u("touch_hits", s.st.touchHits.Load())
	u("touch_misses", s.st.touchMisses.Load())
	u("store_too_large", s.st.storeTooLarge.Load())
	u("protocol_errors", s.st.protoErrs.Load())
	i("item_size_max", int64(s.maxItem()))
	i("threads", int64(runtime.GOMAXPROCS(0)))
	// Counters monitoring tools expect that are zero by design: kumo does
	// not evict, never stops listening (connections over the limit are
	// refused one by one) and has no per-event request limit.
	add("accepting_conns", "1")
	add("listen_disabled_num", "0")
	add("conn_yields", "0")
	add("evictions", "0")
	if s.Backend == nil {
		return nil
	}
	return s.Backend.Stats(ctx, add)
}

// cpuTimes is the process's CPU time for stats (a variable so that tests
// can make stats replies reproducible).
var cpuTimes = processCPU

// seconds formats microseconds as memcached's rusage: "1.000200".
func seconds(us int64) string {
	frac := strconv.FormatInt(us%1e6, 10)
	return strconv.FormatInt(us/1e6, 10) + "." + "000000"[len(frac):] + frac
}

// resetStats is `stats reset`: zero the counters (not the connection gauges).
func (s *Server) resetStats() {
	st := &s.st
	st.totalConns.Store(st.currConns.Load())
	st.rejectedConns.Store(0)
	for _, c := range []*atomic.Uint64{&st.cmdGet, &st.cmdSet, &st.cmdFlush, &st.cmdTouch, &st.cmdMeta,
		&st.getHits, &st.getMisses, &st.deleteHits, &st.deleteMisses, &st.incrHits, &st.incrMisses,
		&st.decrHits, &st.decrMisses, &st.casHits, &st.casMisses, &st.casBadval, &st.touchHits,
		&st.touchMisses, &st.storeTooLarge, &st.protoErrs, &st.bytesRead, &st.bytesWritten} {
		c.Store(0)
	}
	s.detail.reset()
}

// Buffer pools by size class. Buffers are handed out as *[]byte so that
// Put does not allocate.
var bufClasses = [...]int{4 << 10, 32 << 10, 256 << 10, 1<<20 + 64<<10}

var bufPools [len(bufClasses)]sync.Pool

// getBuf returns a buffer of length >= n from the pool of its size class.
func getBuf(n int) *[]byte {
	for i, sz := range bufClasses {
		if n <= sz {
			if p, ok := bufPools[i].Get().(*[]byte); ok {
				return p
			}
			b := make([]byte, sz)
			return &b
		}
	}
	b := make([]byte, n)
	return &b
}

// Test hooks, nil outside tests: testHookPutBuf sees each buffer that
// putBuf returns to a pool, testHookSettle runs when a connection starts
// waiting for its pending asynchronous request.
var (
	testHookPutBuf func(b []byte)
	testHookSettle func()
)

// putBuf returns p to its pool; buffers of no class are dropped.
func putBuf(p *[]byte) {
	if p == nil {
		return
	}
	c := cap(*p)
	for i, sz := range bufClasses {
		if c == sz {
			*p = (*p)[:sz]
			if testHookPutBuf != nil {
				testHookPutBuf(*p)
			}
			bufPools[i].Put(p)
			return
		}
	}
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufSize) }}
)
