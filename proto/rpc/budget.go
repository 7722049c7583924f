package rpc

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on what strangers can make a Server hold. A peer that sends the
// start of a large frame and then nothing more holds a buffer of that
// size; twenty of them holding 60 MiB each would hold over a gigabyte. The
// read buffers of a Server's accepted connections therefore grow beyond
// frameFree (64 KiB) only out of a shared budget (Server.FrameMemory),
// and only while a frame is incomplete: a buffer grown beyond frameFree is
// dropped as soon as its frames are served. A connection that needs room
// when there is none closes the one whose incomplete frame has waited
// longest for its bytes (a second at least), and waits; if no room comes
// within its call timeout it is closed itself. One whose large frame gets
// no bytes at all for frameStall is closed too. And a Server accepts at
// most Server.MaxConns connections at once.

const (
	// DefaultFrameMemory is Server.FrameMemory's default.
	DefaultFrameMemory = 1 << 30
	// frameFree is what a connection's read buffer may grow to without
	// the budget: most connections never need more.
	frameFree = 64 << 10
	// ReplyMemory is how many bytes of replies a Server's connections
	// may owe their peers together before a connection that owes any
	// takes no further request (see Conn.overOwed).
	ReplyMemory = 256 << 20
	// DefaultMaxConns is Server.MaxConns's default.
	DefaultMaxConns = 4096
	// frameStall is how long a frame that holds budget may wait for its
	// next bytes.
	frameStall = 30 * time.Second
)

// memBudget is a byte budget shared by the read buffers of a Server's
// connections.
type memBudget struct {
	max      int64
	stall    time.Duration // 0 = frameStall
	evictAge time.Duration // 0 = evictAge

	mu      sync.Mutex // serializes changes of used (and waits for them); protects holders, pending
	cond    *sync.Cond
	used    atomic.Int64 // changed under mu, read without it
	holders map[*frameHold]struct{}
	pending int // holders evicted but not yet released
}

// frameHold is one connection's share of a memBudget.
type frameHold struct {
	nc      net.Conn
	held    int64        // under memBudget.mu
	since   atomic.Int64 // monotime when its incomplete frame began; 0: none
	evicted atomic.Bool  // its connection was made to give way
}

func newMemBudget(max int64) *memBudget {
	b := &memBudget{max: max, holders: make(map[*frameHold]struct{})}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// evictAge is how long an incomplete frame must have waited for its bytes
// before its connection may be closed to make room for another's.
const evictAge = time.Second

// acquire reserves n more bytes for h, waiting up to wait for others to
// release them, and reports whether it did. While it waits it closes, one
// at a time, the connections whose incomplete frames have waited longest
// for their bytes (see evictFor): a peer that trickles a huge frame cannot
// keep the cluster's own frames out. A request larger than the whole
// budget, or one of an evicted holder, fails.
func (b *memBudget) acquire(h *frameHold, n int64, wait time.Duration) bool {
	if b == nil {
		return true
	}
	if n > b.max {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	expired := false
	var t *time.Timer
	for b.used.Load()+n > b.max {
		if expired || h.evicted.Load() {
			return false
		}
		b.evictFor(h)
		if t == nil {
			t = time.AfterFunc(wait, func() {
				b.mu.Lock()
				expired = true
				b.mu.Unlock()
				b.cond.Broadcast()
			})
			defer t.Stop()
		}
		b.cond.Wait()
	}
	b.used.Add(n)
	h.held += n
	b.holders[h] = struct{}{}
	return true
}

// evictFor closes the connection, other than h's, whose incomplete frame
// has waited longest for its bytes (evictAge at least), unless one closed
// for that has not given its share back yet. b.mu is held.
func (b *memBudget) evictFor(h *frameHold) {
	if b.pending > 0 {
		return
	}
	age := evictAge
	if b.evictAge > 0 {
		age = b.evictAge
	}
	cut := monotime() - int64(age)
	var victim *frameHold
	for o := range b.holders {
		since := o.since.Load()
		if o == h || o.held == 0 || o.evicted.Load() || since == 0 || since > cut {
			continue
		}
		if victim == nil || since < victim.since.Load() {
			victim = o
		}
	}
	if victim != nil {
		victim.evicted.Store(true)
		b.pending++
		victim.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// release gives back all that h holds.
func (b *memBudget) release(h *frameHold) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.used.Add(-h.held)
	h.held = 0
	delete(b.holders, h)
	if h.evicted.Load() {
		b.pending--
	}
	b.mu.Unlock()
	b.cond.Broadcast()
}

func (b *memBudget) inUse() int64 { return b.used.Load() }

func (b *memBudget) stallTime() time.Duration {
	if b.stall > 0 {
		return b.stall
	}
	return frameStall
}
