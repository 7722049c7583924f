package rpc

// Batch holds the requests one goroutine sends with GoIn until it calls
// Flush, so that the requests it starts in one round of work (an event
// loop serving every client connection that became readable) leave with
// one write per connection, written by that goroutine, instead of waking
// each connection's writer goroutine. While a Batch holds a connection,
// frames other goroutines append to it wait for the Flush too, so Flush
// must follow promptly.
//
// A Batch belongs to one goroutine; its zero value is ready to use.
type Batch struct {
	conns []*Conn // held by this batch, in the order first used
}

// hold records that b holds c, once. c.wmu is held.
func (b *Batch) hold(c *Conn) {
	for _, h := range b.conns {
		if h == c {
			return
		}
	}
	c.held++
	b.conns = append(b.conns, c)
}

// Flush writes what b holds: each connection's pending frames with one
// write that does not block (what the socket does not take then, and
// batches over 64 KiB, go to the connection's writer goroutine).
func (b *Batch) Flush() {
	for i, c := range b.conns {
		c.wmu.Lock()
		c.held--
		c.flushHeld()
		b.conns[i] = nil
	}
	b.conns = b.conns[:0]
}
