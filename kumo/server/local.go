package server

import (
	"net"
	"sync"

	"kumofs/internal/memconn"
)

// DialLocal returns a connection to this server's RPC service that stays
// inside the process (internal/memconn): a gateway embedded in the server process
// (kumo-server -t) reaches its own server through it without sockets or
// system calls, with the very protocol, clocks and checks of a remote
// gateway. It fails with ErrClosed once the server is closing.
func (s *Server) DialLocal() (net.Conn, error) {
	a, b := memconn.Pipe("local:" + s.cfg.Self.String())
	if !s.local.offer(b) {
		a.Close()
		b.Close()
		return nil, ErrClosed
	}
	return a, nil
}

// pipeListener is a net.Listener of in-process connections handed to it by
// offer.
type pipeListener struct {
	addr net.Addr
	ch   chan net.Conn // unbuffered: offer waits for Accept

	mu     sync.Mutex // protects closed
	closed bool
	done   chan struct{} // closed by Close
}

func newPipeListener(addr net.Addr) *pipeListener {
	return &pipeListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// offer hands c to Accept and reports whether it was taken.
func (l *pipeListener) offer(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// Accept implements net.Listener.
func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *pipeListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	return nil
}

// Addr implements net.Listener.
func (l *pipeListener) Addr() net.Addr { return l.addr }
