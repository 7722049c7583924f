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
	rc := rawConn(c)
	if rc == nil {
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

type reader struct {
	rc  syscall.RawConn // nil: the conn has no file descriptor
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // read, bound once
}

// Init prepares r for c and reports whether c supports raw reads.
func (r *Reader) Init(c net.Conn) bool {
	rc := rawConn(c)
	if rc == nil {
		return false
	}
	r.r.rc = rc
	r.r.fn = r.r.read
	return true
}

func (r *reader) read(fd uintptr) bool {
	for {
		r.n, r.err = syscall.Read(int(fd), r.b)
		if r.err != syscall.EINTR {
			return true // one attempt, whatever it did
		}
	}
}

// TryRead makes one read(2) into b that does not wait for the socket. It
// returns n > 0 for data, n == 0 and a nil error at the end of the stream,
// ErrWouldBlock if nothing is there yet, or the read's error (also when r
// was not initialized for a socket, or the conn is closed).
func (r *Reader) TryRead(b []byte) (n int, err error) {
	if r.r.rc == nil {
		return 0, syscall.EINVAL
	}
	r.r.b = b
	err = r.r.rc.Read(r.r.fn)
	r.r.b = nil
	switch {
	case err != nil:
		return 0, err
	case r.r.err == syscall.EAGAIN:
		return 0, ErrWouldBlock
	case r.r.err != nil:
		return 0, r.r.err
	case r.r.n < 0:
		return 0, syscall.EIO
	}
	return r.r.n, nil
}

// rawConn returns c's raw socket access, or nil if c has no descriptor.
func rawConn(c net.Conn) syscall.RawConn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}
