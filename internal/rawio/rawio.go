// Package rawio makes single non-blocking write and read attempts on
// sockets, for goroutines that must never block in Write or Read (a
// connection's read loop, a completion running on another connection's
// read loop, an event loop serving many connections): they move what the
// socket has at once and leave the rest to a goroutine that may block, or
// to the next readiness event. Its Read and Write block like the conn's
// own, waiting in the runtime's poller.
//
// On Linux every read and write is a raw system call (a non-blocking
// socket call never blocks, so it need not tell the scheduler it is in a
// system call), except under the race detector (see sys_unix.go). Entering a system call the ordinary way wakes the
// runtime's sysmon thread whenever it sleeps because the process was idle,
// which a daemon answering one request at a time is between most
// requests: on a 2-core VM that was a third of a server's context
// switches and 7% of its CPU (BENCHMARKS.md, session 12).
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
