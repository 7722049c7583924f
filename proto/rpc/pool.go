package rpc

import (
	"math/bits"
	"sync"
)

// Byte buffers are pooled by power-of-two size class, from 64 B to 1 MiB;
// larger buffers are allocated and dropped.
const (
	minClassShift = 6
	maxClassShift = 20
)

var bufPools [maxClassShift - minClassShift + 1]sync.Pool

func classOf(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// getBuf returns a buffer with len 0 and cap >= n.
func getBuf(n int) *[]byte {
	c := classOf(n)
	if c >= len(bufPools) {
		b := make([]byte, 0, n)
		return &b
	}
	if p, ok := bufPools[c].Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 1<<(c+minClassShift))
	return &b
}

// putBuf returns p to its pool; p must not be used afterwards.
func putBuf(p *[]byte) {
	c := cap(*p)
	if c < 1<<minClassShift || c > 1<<maxClassShift || c&(c-1) != 0 {
		return
	}
	*p = (*p)[:0]
	bufPools[classOf(c)].Put(p)
}

// Result is the raw msgpack result of a successful Call, in a pooled buffer.
// Bytes stays valid until Release; call Release exactly once when done (a
// Result that is never released is simply garbage collected).
type Result struct {
	p *[]byte
}

// Bytes returns the result's msgpack encoding, valid until Release.
func (r Result) Bytes() []byte {
	if r.p == nil {
		return nil
	}
	return *r.p
}

// Release returns the buffer to the pool. Bytes must not be used afterwards.
func (r Result) Release() {
	if r.p != nil {
		putBuf(r.p)
	}
}
