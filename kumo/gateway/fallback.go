package gateway

import (
	"sync/atomic"
	"time"
)

// fallbackFor is how long the gateway goes without a method a server did
// not know before it tries the method again.
const fallbackFor = time.Minute

// fallback is a method (SrvSetDirect, SrvGetMulti) the gateway stopped
// using because a server answered it with a protocol error: a server older
// than the method, during a rolling upgrade. It is tried again after
// fallbackFor, so that once every server is upgraded the gateway uses it
// again without a restart; a server that still does not know it turns it
// off for another fallbackFor, at the cost of one failed call. The zero
// value is a method in use.
type fallback struct {
	until atomic.Int64 // unix nanoseconds until which the method is off; 0: in use
}

// off reports whether the method is not to be used now. It reads the
// clock only while the method is off.
func (f *fallback) off() bool {
	u := f.until.Load()
	if u == 0 {
		return false
	}
	if time.Now().UnixNano() < u {
		return true
	}
	f.until.CompareAndSwap(u, 0)
	return false
}

// stop turns the method off for fallbackFor from now and reports whether
// it was in use (so that the caller logs each change once).
func (f *fallback) stop() (wasOn bool) {
	now := time.Now()
	for {
		u := f.until.Load()
		if f.until.CompareAndSwap(u, now.Add(fallbackFor).UnixNano()) {
			return u == 0 || u <= now.UnixNano()
		}
	}
}
