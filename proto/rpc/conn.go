package rpc

import (
	"errors"
	"log"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"kumofs/internal/rawio"
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

	wmu     sync.Mutex // protects wbuf, spare, writing, batching, held, wclosed, wdrain, owed, owedOut, trim, trimArmed, bigAt
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
	// The trim timer lets go of large write buffers once writes stop
	// using them (see trimBufs); bigAt is when a write last left one.
	trim      *time.Timer
	trimArmed bool
	bigAt     int64 // monotime

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

	// reqs holds the Requests the read goroutine hands out next (its
	// own): carved from one array at a time, a request costs no allocation
	// of its own, and an array is freed when none of its requests is held.
	reqs []Request

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
		if c.trim != nil {
			c.trim.Stop()
		}
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
