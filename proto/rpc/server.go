package rpc

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"kumofs/internal/loglimit"
)

// Server accepts connections and serves requests on them. Set the fields
// before calling Serve and do not change them afterwards.
type Server struct {
	// Handler serves requests; nil answers every request with CodeProtocol.
	Handler Handler

	// OnHello is called (on the read goroutine; it must not block) when a
	// peer sends a hello; the hello it returns, if any, is sent back (kumofs
	// cluster handshake).
	OnHello func(c *Conn, h Hello) *Hello

	// OnClose is called once for every accepted connection when it has
	// closed, after its goroutines are done.
	OnClose func(c *Conn)

	MaxFrame int // largest accepted incoming frame; default 64 MiB
	// FrameMemory bounds what the read buffers of all accepted
	// connections hold beyond their first 64 KiB each (see budget.go); 0
	// means DefaultFrameMemory, negative no limit.
	FrameMemory int64
	// MaxConns is the most connections open at once; more are closed as
	// they are accepted. 0 means DefaultMaxConns, negative no limit.
	MaxConns int
	// MaxReplies is how many bytes of replies all accepted connections
	// may owe their peers together before one that owes any takes no
	// further request (see Conn.overOwed); 0 means ReplyMemory.
	MaxReplies   int64
	CallTimeout  time.Duration // default deadline of calls on accepted conns; default 5 s
	WriteTimeout time.Duration // default 10 s
	Logf         func(format string, args ...any)

	mu        sync.Mutex // protects listeners, conns, accepted, closed, refused, refusedLog, frameMem
	listeners map[net.Listener]struct{}
	conns     map[*Conn]struct{}
	accepted  uint64
	closed    bool
	refused   uint64    // connections over MaxConns
	refusedAt time.Time // when a refusal was last logged
	frameMem  *memBudget
	replies   atomic.Int64 // replies owed on all accepted connections (Conn.overOwed)
	// frameStall and frameEvictAge, if set, replace frameStall and
	// evictAge (tests change them).
	frameEvictAge time.Duration
	frameStall    time.Duration
	wg            sync.WaitGroup // Serve loops and accepted connections
}

// Serve accepts connections on l until Close, and then returns ErrClosed.
// Other accept errors are returned (temporary ones are retried).
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*Conn]struct{})
		switch {
		case s.FrameMemory == 0:
			s.frameMem = newMemBudget(DefaultFrameMemory)
		case s.FrameMemory > 0:
			s.frameMem = newMemBudget(s.FrameMemory)
		}
		if s.frameMem != nil {
			s.frameMem.stall, s.frameMem.evictAge = s.frameStall, s.frameEvictAge
		}
	}
	fm := s.frameMem
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	o := Options{MaxFrame: s.MaxFrame, CallTimeout: s.CallTimeout, WriteTimeout: s.WriteTimeout, Logf: s.Logf}
	o.setDefaults()
	// Lines about single connections go through a limiter: whoever can
	// reach the port could otherwise write one per connection it breaks.
	logf := loglimit.New(o.Logf).Logf
	cfg := connConfig{
		handler:      s.Handler,
		onHello:      s.OnHello,
		onClose:      s.connClosed,
		maxFrame:     o.MaxFrame,
		callTimeout:  o.CallTimeout,
		writeTimeout: o.WriteTimeout,
		logf:         logf,
		frameMem:     fm,
		replies:      &s.replies,
		replyMax:     ReplyMemory,
	}
	if s.MaxReplies > 0 {
		cfg.replyMax = s.MaxReplies
	}
	maxConns := s.MaxConns
	if maxConns == 0 {
		maxConns = DefaultMaxConns
	}
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() { // EMFILE and the like
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				logf("rpc: accept: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			s.mu.Lock()
			delete(s.listeners, l)
			s.mu.Unlock()
			return err
		}
		delay = 0
		s.mu.Lock()
		if maxConns > 0 && len(s.conns) >= maxConns && !s.closed {
			if v := s.silentLocked(); v != nil {
				// Make room: the newcomer may be a peer; the oldest
				// connection that never sent a byte is none. (It leaves
				// s.conns once its goroutines are done.)
				s.mu.Unlock()
				v.Close()
				s.mu.Lock()
			} else {
				s.refused++
				logIt := time.Since(s.refusedAt) >= time.Minute
				if logIt {
					s.refusedAt = time.Now()
				}
				n := s.refused
				s.mu.Unlock()
				nc.Close()
				if logIt {
					o.Logf("rpc: refusing connections: %d open, the limit (%d refused so far)", maxConns, n)
				}
				continue
			}
		}
		s.mu.Unlock()
		c := newConn(nc, cfg)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.accepted++
		s.wg.Add(1)
		s.mu.Unlock()
		c.start()
	}
}

// connClosed is the onClose hook of accepted connections.
func (s *Server) connClosed(c *Conn, err error) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if s.OnClose != nil {
		s.OnClose(c)
	}
	s.wg.Done()
}

// Close closes the listeners and all accepted connections and waits for
// every goroutine the server started (Serve returns ErrClosed). It must not
// be called from a handler or callback running on one of its connections.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	s.wg.Wait()
	return nil
}

// silentAge is how long a connection must have sent nothing at all before
// a newcomer over MaxConns may take its place.
const silentAge = time.Second

// silentLocked returns the open connection, accepted at least silentAge
// ago, that has sent nothing since and is the oldest such, or nil. s.mu
// is held.
func (s *Server) silentLocked() *Conn {
	cut := monotime() - int64(silentAge)
	var v *Conn
	for c := range s.conns {
		if c.created > cut || c.lastRead.Load() != c.created || c.Err() != nil {
			continue
		}
		if v == nil || c.created < v.created {
			v = c
		}
	}
	return v
}

// frameBudget returns the frame memory budget, once Serve made it.
func (s *Server) frameBudget() *memBudget {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frameMem
}

// Conns returns the number of open accepted connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Accepted returns the number of connections accepted since Serve began.
func (s *Server) Accepted() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}
