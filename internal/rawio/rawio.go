// Package rawio makes single non-blocking write and read attempts on
// sockets, for goroutines that must never block in Write or Read (a
// connection's read loop, a completion running on another connection's
// read loop, an event loop serving many connections): they move what the
// socket has at once and leave the rest to a goroutine that may block, or
// to the next readiness event.
package rawio

import "errors"

// ErrWouldBlock is TryRead's answer when the socket has nothing to read.
var ErrWouldBlock = errors.New("rawio: would block")

// Reader makes non-blocking read attempts on one connection. Init it once;
// it is not safe for concurrent use.
type Reader struct {
	r reader
}

// Writer makes non-blocking write attempts on one connection. Init it once;
// it is not safe for concurrent use (callers serialize their writes anyway).
type Writer struct {
	w writer
}
