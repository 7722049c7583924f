package rpc

import (
	"sync"
	"sync/atomic"
	"time"
)

// Limits on what strangers can make a Server hold. A peer that sends the
// start of a large frame and then nothing more holds a buffer of that
// size; twenty of them holding 60 MiB each would hold over a gigabyte. The
// read buffers of a Server's accepted connections therefore grow beyond
// frameFree (64 KiB) only out of a shared budget (Server.FrameMemory); a
// connection that cannot get what it needs within its call timeout is
// closed, and one that holds budget for a frame whose bytes stop coming
// for frameStall is closed too, giving the budget back. And a Server
// accepts at most Server.MaxConns connections at once.

const (
	// DefaultFrameMemory is Server.FrameMemory's default: room for a
	// thousand connections that keep a buffer grown for a 1 MiB value
	// (a buffer over 1 MiB is dropped once its frame is served; smaller
	// ones stay while the budget is less than half used).
	DefaultFrameMemory = 1 << 30
	// frameFree is what a connection's read buffer may grow to without
	// the budget: most connections never need more.
	frameFree = 64 << 10
	// DefaultMaxConns is Server.MaxConns's default.
	DefaultMaxConns = 4096
	// frameStall is how long a frame that holds budget may wait for its
	// next bytes.
	frameStall = 30 * time.Second
)

// memBudget is a byte budget shared by connections.
type memBudget struct {
	max   int64
	stall time.Duration // 0 = frameStall

	mu   sync.Mutex // serializes changes of used (and waits for them)
	cond *sync.Cond
	used atomic.Int64 // changed under mu, read without it
}

func newMemBudget(max int64) *memBudget {
	b := &memBudget{max: max}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire reserves n bytes, waiting up to wait for others to release
// them, and reports whether it did. A request larger than the whole budget
// fails at once.
func (b *memBudget) acquire(n int64, wait time.Duration) bool {
	if b == nil {
		return true
	}
	if n > b.max {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used.Load()+n <= b.max {
		b.used.Add(n)
		return true
	}
	expired := false
	t := time.AfterFunc(wait, func() {
		b.mu.Lock()
		expired = true
		b.mu.Unlock()
		b.cond.Broadcast()
	})
	defer t.Stop()
	for b.used.Load()+n > b.max {
		if expired {
			return false
		}
		b.cond.Wait()
	}
	b.used.Add(n)
	return true
}

// release gives back n bytes.
func (b *memBudget) release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.used.Add(-n)
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
