// Package memconn is an in-process, buffered net.Conn pair. Unlike
// net.Pipe, a Write returns as soon as its bytes are queued (up to a bound,
// like a socket buffer), so a writer and its reader do not meet for every
// write, and TryWrite offers the non-blocking attempt that rpc's read loop
// uses on sockets (see internal/rawio).
package memconn

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// DefaultLimit is how many unread bytes a direction holds before Write
// waits and TryWrite comes up short.
const DefaultLimit = 4 << 20

// Addr is the address of both ends of a pair.
type Addr string

// Network implements net.Addr.
func (a Addr) Network() string { return "memconn" }

// String implements net.Addr.
func (a Addr) String() string { return string(a) }

// Pipe returns the two ends of a connection; name is both ends' address.
func Pipe(name string) (a, b net.Conn) {
	x, y := newQueue(), newQueue()
	addr := Addr(name)
	return &Conn{rd: x, wr: y, addr: addr}, &Conn{rd: y, wr: x, addr: addr}
}

// queue is one direction: bytes written by one end, read by the other.
type queue struct {
	mu     sync.Mutex // protects the fields below
	cond   sync.Cond  // on mu: data, space, close or a deadline
	buf    []byte     // unread bytes are buf[r:]
	r      int
	closed bool // either end closed: reads drain, then EOF; writes fail

	rdl, wdl time.Time // read and write deadlines of the ends using it
}

func newQueue() *queue {
	q := &queue{}
	q.cond.L = &q.mu
	return q
}

func (q *queue) unread() int { return len(q.buf) - q.r }

// Conn is one end of a Pipe. It is safe for concurrent use.
type Conn struct {
	rd, wr *queue
	addr   Addr
}

var _ net.Conn = (*Conn)(nil)

func expired(d time.Time) bool { return !d.IsZero() && !time.Now().Before(d) }

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	q := c.rd
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.unread() == 0 {
		switch {
		case q.closed:
			return 0, io.EOF
		case expired(q.rdl):
			return 0, os.ErrDeadlineExceeded
		}
		q.wait(q.rdl)
	}
	n := copy(p, q.buf[q.r:])
	q.r += n
	if q.r == len(q.buf) {
		q.buf, q.r = q.buf[:0], 0
	}
	q.cond.Broadcast() // space for a waiting writer
	return n, nil
}

// Write implements net.Conn: it queues p, waiting while the other end has
// DefaultLimit bytes unread.
func (c *Conn) Write(p []byte) (int, error) {
	q := c.wr
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for n < len(p) {
		switch {
		case q.closed:
			return n, net.ErrClosed
		case expired(q.wdl):
			return n, os.ErrDeadlineExceeded
		}
		m := min(len(p)-n, DefaultLimit-q.unread())
		if m <= 0 {
			q.wait(q.wdl)
			continue
		}
		q.push(p[n : n+m])
		n += m
	}
	return n, nil
}

// TryWrite queues what fits of p without waiting and returns how much
// that was; ok is false if nothing could be queued.
func (c *Conn) TryWrite(p []byte) (n int, ok bool) {
	q := c.wr
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || expired(q.wdl) {
		return 0, false
	}
	n = min(len(p), DefaultLimit-q.unread())
	if n <= 0 {
		return 0, false
	}
	q.push(p[:n])
	return n, true
}

// push appends b to the queue and wakes the reader; mu is held.
func (q *queue) push(b []byte) {
	if q.r > 0 && q.r >= len(q.buf)/2 { // reclaim the read part
		q.buf = q.buf[:copy(q.buf, q.buf[q.r:])]
		q.r = 0
	}
	q.buf = append(q.buf, b...)
	q.cond.Broadcast()
}

// Close implements net.Conn: both directions end; the other end reads what
// was queued, then EOF.
func (c *Conn) Close() error {
	for _, q := range []*queue{c.rd, c.wr} {
		q.mu.Lock()
		q.closed = true
		q.cond.Broadcast()
		q.mu.Unlock()
	}
	return nil
}

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return c.addr }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return c.addr }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	q := c.rd
	q.mu.Lock()
	q.rdl = t
	q.cond.Broadcast() // a waiting reader re-checks it
	q.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	q := c.wr
	q.mu.Lock()
	q.wdl = t
	q.cond.Broadcast()
	q.mu.Unlock()
	return nil
}

// wait waits on cond, at most until the deadline d (zero: no limit); mu is
// held. Timers exist only while someone waits with a deadline.
func (q *queue) wait(d time.Time) {
	if d.IsZero() {
		q.cond.Wait()
		return
	}
	t := time.AfterFunc(time.Until(d), func() {
		q.mu.Lock()
		q.cond.Broadcast()
		q.mu.Unlock()
	})
	q.cond.Wait()
	t.Stop()
}
