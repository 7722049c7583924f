package rpc

import (
	"context"
	"net"
	"sync"
	"time"
)

// Client keeps one connection to addr, reconnecting in the background.
//
// After a connection is lost the client reconnects at once (as kumofs does);
// failed attempts, and connections that drop within maxBackoff of being
// made, back off exponentially from 50 ms to 2 s. While the first attempt
// after a working connection (or after Dial) is in progress, calls wait for
// its outcome (within their deadline); while the client is backing off, and
// during the attempts that follow a failed one, calls fail at once with
// ErrPeerDown, so that a peer behind a partition (whose dials hang until
// the dial timeout) costs callers nothing.
type Client struct {
	addr string
	opt  Options
	cfg  connConfig

	mu      sync.Mutex    // protects conn, attempt, failing, closed
	conn    *Conn         // the live connection, nil while down
	attempt chan struct{} // non-nil while dialing; closed when the attempt ends
	failing bool          // the last dial failed: calls do not wait for the next
	closed  bool

	kick chan struct{} // Redial's wake-up for a backoff wait; capacity 1
	stop chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// Dial returns a Client for addr ("host:port") and starts connecting in the
// background; it never blocks.
func Dial(addr string, opt Options) *Client {
	opt.setDefaults()
	cl := &Client{addr: addr, opt: opt, stop: make(chan struct{}), kick: make(chan struct{}, 1)}
	cl.cfg = connConfig{
		handler:      opt.Handler,
		maxFrame:     opt.MaxFrame,
		callTimeout:  opt.CallTimeout,
		writeTimeout: opt.WriteTimeout,
		closeSilent:  opt.CloseSilent,
		probe:        opt.Probe,
		logf:         opt.Logf,
	}
	if opt.OnHello != nil {
		cl.cfg.onHello = func(c *Conn, h Hello) *Hello { opt.OnHello(c, h); return nil }
	}
	cl.attempt = make(chan struct{})
	cl.wg.Add(1)
	go cl.run(cl.attempt)
	return cl
}

// Addr returns the address the client connects to.
func (cl *Client) Addr() string { return cl.addr }

// Conn returns the live connection, or nil while disconnected.
func (cl *Client) Conn() *Conn {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.conn
}

// Close stops reconnecting, closes the connection (pending calls fail with
// ErrClosed) and waits for the client's goroutines. Calling it from a
// handler or callback running on the client's connection deadlocks; use
// Conn.Close there, or call Close from another goroutine.
func (cl *Client) Close() error {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return nil
	}
	cl.closed = true
	close(cl.stop)
	cl.mu.Unlock()
	cl.wg.Wait()
	return nil
}

// run is the connection manager goroutine, owned by the Client and stopped
// by Close. attempt is the channel of the first connection attempt.
func (cl *Client) run(attempt chan struct{}) {
	defer cl.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-cl.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	dial := cl.opt.Dial
	if dial == nil {
		d := net.Dialer{Timeout: cl.opt.DialTimeout}
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	failures := 0
	backoff := minBackoff
	for {
		wait := true // back off before the next attempt
		nc, err := dial(ctx, cl.addr)
		if err != nil {
			failures++
			// OnDown hears of the failure before the calls waiting for this
			// attempt fail with ErrPeerDown, so that what they report can
			// name the dial error (DownCause).
			cl.mu.Lock()
			closed := cl.closed
			cl.mu.Unlock()
			if !closed && cl.opt.OnDown != nil {
				cl.opt.OnDown(failures, err)
			}
			cl.mu.Lock()
			cl.attempt = nil
			cl.failing = true
			close(attempt)
			closed = cl.closed
			cl.mu.Unlock()
			if closed {
				return
			}
		} else {
			failures = 0
			c := newConn(nc, cl.cfg)
			if cl.opt.Hello != nil {
				c.writeHello(cl.opt.Hello)
			}
			c.start()
			cl.mu.Lock()
			closed := cl.closed
			if !closed {
				cl.conn = c
			}
			cl.attempt = nil
			cl.failing = false
			close(attempt)
			cl.mu.Unlock()
			if closed {
				c.Close()
				<-c.finished
				return
			}
			upAt := time.Now()
			if cl.opt.OnUp != nil {
				cl.opt.OnUp(c)
			}
			select {
			case <-c.done:
			case <-cl.stop:
				c.Close()
			}
			<-c.finished
			cl.mu.Lock()
			cl.conn = nil
			closed = cl.closed
			cl.mu.Unlock()
			if closed {
				return
			}
			if cl.opt.OnDown != nil {
				cl.opt.OnDown(0, c.Err())
			}
			if time.Since(upAt) >= maxBackoff {
				backoff = minBackoff
				wait = false // a long-lived connection dropped: reconnect at once
			}
		}
		if wait { // calls fail fast with ErrPeerDown meanwhile
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
				backoff = nextBackoff(backoff)
			case <-cl.kick:
				t.Stop()
				backoff = minBackoff
			case <-cl.stop:
				t.Stop()
				return
			}
		}
		cl.mu.Lock()
		if cl.closed {
			cl.mu.Unlock()
			return
		}
		attempt = make(chan struct{})
		cl.attempt = attempt
		cl.mu.Unlock()
	}
}

// Redial cuts a backoff wait short: if the client is backing off, it dials
// again at once and its backoff restarts from the minimum. Callers use it
// when something else (a manager's hash space) says the peer is back, so
// that calls stop failing with ErrPeerDown for the rest of a long backoff.
// It never blocks and does nothing while connected; during an attempt it
// makes the backoff wait after it, if the attempt fails, end at once.
func (cl *Client) Redial() {
	cl.mu.Lock()
	down := cl.conn == nil && !cl.closed
	cl.mu.Unlock()
	if !down {
		return
	}
	select {
	case cl.kick <- struct{}{}:
	default:
	}
}

// current returns the live connection, waiting for an attempt in progress
// until ctx is done. It fails with ErrPeerDown while backing off.
func (cl *Client) current(ctx context.Context) (*Conn, error) {
	for {
		cl.mu.Lock()
		c, ch, closed, failing := cl.conn, cl.attempt, cl.closed, cl.failing
		cl.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case c != nil:
			return c, nil
		case ch == nil || failing:
			return nil, ErrPeerDown
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ErrTimeout
		}
	}
}

// Call sends a request on the live connection and waits for the response;
// see Conn.Call. Without a ctx deadline, the wait for a connection attempt
// in progress and the call itself are each bounded by Options.CallTimeout.
func (cl *Client) Call(ctx context.Context, method uint32, args func([]byte) []byte) (Result, error) {
	c, err := cl.fastConn()
	if c == nil && err == nil {
		wctx := ctx
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, cl.opt.CallTimeout)
			defer cancel()
		}
		c, err = cl.current(wctx)
	}
	if err != nil {
		return Result{}, err
	}
	return c.Call(ctx, method, args)
}

// fastConn returns the live connection, or an error if the client is closed
// or backing off, or (nil, nil) if an attempt is in progress.
func (cl *Client) fastConn() (*Conn, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	switch {
	case cl.closed:
		return nil, ErrClosed
	case cl.conn != nil:
		return cl.conn, nil
	case cl.attempt == nil || cl.failing:
		return nil, ErrPeerDown
	}
	return nil, nil
}

// Go sends a request asynchronously on the live connection; see Conn.Go.
// While a connection attempt is in progress it waits for it on a new
// goroutine (so calls issued then are not ordered with later ones); while
// backing off, done gets ErrPeerDown at once.
func (cl *Client) Go(method uint32, args func([]byte) []byte, timeout time.Duration, done func(result []byte, err error)) {
	cl.goCall(nil, method, args, timeout, done, nil)
}

// GoBatched is Go with Conn.GoBatched's batch and completion: the request
// is held in b when the connection is live; while it is being set up, the
// request waits on a goroutine of its own (b is not used then) and done
// gets a nil batch unless it runs on the connection's read goroutine.
func (cl *Client) GoBatched(b *Batch, method uint32, args func([]byte) []byte, timeout time.Duration, done func(result []byte, err error, rb *Batch)) {
	cl.goCall(b, method, args, timeout, nil, done)
}

// goCall is Go (done) or GoBatched (doneB).
func (cl *Client) goCall(b *Batch, method uint32, args func([]byte) []byte, timeout time.Duration,
	done func([]byte, error), doneB func([]byte, error, *Batch)) {
	c, err := cl.fastConn()
	if err != nil {
		failCall(done, doneB, err)
		return
	}
	if c != nil {
		sendCall(c, b, method, args, timeout, done, doneB)
		return
	}
	if timeout <= 0 {
		timeout = cl.opt.CallTimeout
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		c, err := cl.current(ctx)
		if err != nil {
			failCall(done, doneB, err)
			return
		}
		left := timeout - time.Since(start)
		if left <= 0 {
			failCall(done, doneB, ErrTimeout)
			return
		}
		sendCall(c, nil, method, args, left, done, doneB)
	}()
}

func failCall(done func([]byte, error), doneB func([]byte, error, *Batch), err error) {
	if done != nil {
		done(nil, err)
	} else {
		doneB(nil, err, nil)
	}
}

func sendCall(c *Conn, b *Batch, method uint32, args func([]byte) []byte, timeout time.Duration,
	done func([]byte, error), doneB func([]byte, error, *Batch)) {
	if done != nil {
		c.GoIn(b, method, args, timeout, done)
	} else {
		c.GoBatched(b, method, args, timeout, doneB)
	}
}

// nextBackoff doubles d, capped at maxBackoff.
func nextBackoff(d time.Duration) time.Duration { return min(2*d, maxBackoff) }

// DownCause keeps the last error a client's OnDown reported, for a tool
// that makes one call and wants to say why it failed ("connection
// refused") rather than the call's ErrPeerDown. Use its Set as
// Options.OnDown. The zero value is ready to use.
type DownCause struct {
	mu  sync.Mutex // protects err
	err error
}

// Set records err; its signature is Options.OnDown's.
func (d *DownCause) Set(_ int, err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
}

// Explain returns the last error Set recorded in place of err, or err if
// there was none.
func (d *DownCause) Explain(err error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	return err
}
