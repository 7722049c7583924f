//go:build unix

package memcache

import (
	"net"
	"syscall"
)

// rawWriter makes single non-blocking write attempts on a socket.
type rawWriter struct {
	rc  syscall.RawConn // nil if the conn has no file descriptor
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // w.write, bound once
}

func (w *rawWriter) init(nc net.Conn) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	w.rc = rc
	w.fn = w.write
}

func (w *rawWriter) write(fd uintptr) bool {
	w.n, w.err = syscall.Write(int(fd), w.b)
	return true // one attempt, whatever it did
}

// tryWrite makes one write(2) of b that does not wait for the socket, and
// returns how much it took; ok is false if it could not try or the write
// failed (then nothing was written and the caller uses a blocking Write).
func (w *rawWriter) tryWrite(b []byte) (n int, ok bool) {
	if w.rc == nil {
		return 0, false
	}
	w.b = b
	err := w.rc.Write(w.fn)
	w.b = nil
	if err != nil || w.err != nil || w.n < 0 {
		return 0, false
	}
	return w.n, true
}
