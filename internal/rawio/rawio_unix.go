//go:build unix

package rawio

import (
	"net"
	"syscall"
)

type writer struct {
	rc  syscall.RawConn // nil: the conn has no file descriptor
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // write, bound once
}

// Init prepares w for c and reports whether c supports raw writes (a TCP or
// Unix socket does; net.Pipe and other in-memory conns do not).
func (w *Writer) Init(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	w.w.rc = rc
	w.w.fn = w.w.write
	return true
}

func (w *writer) write(fd uintptr) bool {
	w.n, w.err = syscall.Write(int(fd), w.b)
	return true // one attempt, whatever it did
}

// TryWrite makes one write(2) of b that does not wait for the socket and
// returns how much of b it took. ok is false if w was not initialized for a
// socket or the write failed (EAGAIN included); nothing was written then,
// and the caller writes b with a blocking Write, which reports real errors.
func (w *Writer) TryWrite(b []byte) (n int, ok bool) {
	if w.w.rc == nil {
		return 0, false
	}
	w.w.b = b
	err := w.w.rc.Write(w.w.fn)
	w.w.b = nil
	if err != nil || w.w.err != nil || w.w.n < 0 {
		return 0, false
	}
	return w.w.n, true
}
