//go:build unix

package rawio

import (
	"io"
	"net"
	"os"
	"syscall"
)

type writer struct {
	c   net.Conn
	rc  syscall.RawConn // nil: the conn has no file descriptor
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // write, bound once
	wfn func(fd uintptr) bool // writeAll, bound once
}

// Init prepares w for c and reports whether c supports raw writes (a TCP or
// Unix socket does; net.Pipe and other in-memory conns do not).
func (w *Writer) Init(c net.Conn) bool {
	rc := rawConn(c)
	if rc == nil {
		return false
	}
	w.w.c, w.w.rc = c, rc
	w.w.fn = w.w.write
	w.w.wfn = w.w.writeAll
	return true
}

// writeAll writes w.b until it is all written (w.n counts), a write fails
// (w.err) or the socket is full (false: the runtime waits until it is
// writable and calls again).
func (w *writer) writeAll(fd uintptr) bool {
	for len(w.b) > 0 {
		n, err := rawWrite(int(fd), w.b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			w.err = err
			return true
		}
		w.n += n
		w.b = w.b[n:]
	}
	return true
}

// Write writes all of b like the conn's Write: it waits (in the runtime's
// poller, honouring the conn's deadlines) while the socket is full. w must
// have been initialized for a socket.
func (w *Writer) Write(b []byte) (n int, err error) {
	w.w.b, w.w.n, w.w.err = b, 0, nil
	err = w.w.rc.Write(w.w.wfn)
	n, w.w.b = w.w.n, nil
	if err == nil {
		err = w.w.err
	}
	if err != nil {
		err = opError("write", w.w.c, err)
	}
	return n, err
}

func (w *writer) write(fd uintptr) bool {
	w.n, w.err = rawWrite(int(fd), w.b)
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
	c   net.Conn
	rc  syscall.RawConn // nil: the conn has no file descriptor
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // read, bound once
	wfn func(fd uintptr) bool // readWait, bound once
}

// Init prepares r for c and reports whether c supports raw reads.
func (r *Reader) Init(c net.Conn) bool {
	rc := rawConn(c)
	if rc == nil {
		return false
	}
	r.r.c, r.r.rc = c, rc
	r.r.fn = r.r.read
	r.r.wfn = r.r.readWait
	return true
}

// readWait is read that has the runtime wait for the socket on EAGAIN.
func (r *reader) readWait(fd uintptr) bool {
	r.read(fd)
	return r.err != syscall.EAGAIN
}

// Read reads into b like the conn's Read: it waits (in the runtime's
// poller, honouring the conn's deadlines) until something arrives, and
// returns io.EOF at the end of the stream. r must have been initialized
// for a socket.
func (r *Reader) Read(b []byte) (n int, err error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.r.b = b
	err = r.r.rc.Read(r.r.wfn)
	r.r.b = nil
	switch {
	case err != nil:
		return 0, opError("read", r.r.c, err)
	case r.r.err != nil:
		return 0, opError("read", r.r.c, r.r.err)
	case r.r.n < 0:
		return 0, opError("read", r.r.c, syscall.EIO)
	case r.r.n == 0:
		return 0, io.EOF
	}
	return r.r.n, nil
}

// opError makes err what c's own Read or Write (op) would have returned: a
// *net.OpError naming op and the addresses, around the system call error
// or the poller's (a deadline, a closed conn).
func opError(op string, c net.Conn, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		e := *oe // the raw conn's: "raw-read" or "raw-write"
		e.Op = op
		return &e
	}
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

func (r *reader) read(fd uintptr) bool {
	for {
		r.n, r.err = rawRead(int(fd), r.b)
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

// PeerState looks at the socket without reading or waiting (a one-byte
// MSG_PEEK): reset reports that the peer reset the connection (it closed
// with unread input or SO_LINGER 0, or closed and then got data), eof that
// it sent no more and nothing is left to read (it closed, or shut down its
// sending side only, and may still read). After a reset the conn is to be
// closed: the peek consumed the socket's pending error. Both false if r
// was not initialized for a socket.
func (r *Reader) PeerState() (reset, eof bool) {
	if r.r.rc == nil {
		return false, false
	}
	var n int
	var rerr error
	var one [1]byte
	err := r.r.rc.Control(func(fd uintptr) {
		for {
			n, _, rerr = syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if rerr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return false, false
	}
	return rerr == syscall.ECONNRESET, rerr == nil && n == 0
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
