package server

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"kumofs/internal/memconn"
	"kumofs/kumo/wire"
	"kumofs/proto/rpc"
	"kumofs/ring"
	"kumofs/store"
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

// ReadLocal reads dbkey for a gateway embedded in this process exactly as
// a SrvGet from it would be answered (the same owner check, expiry, flush
// point and metrics), without encoding a request or a reply: f is called
// once with the stored value, or with nil for a missing, deleted, expired
// or flushed key, unless ReadLocal returns an error, in which case f is
// not called and the caller reads the key through RPC instead (this server
// does not serve the key now: not an active owner in its read hash space,
// not ready, or the store failed). v and v.Data are valid only during f.
func (s *Server) ReadLocal(dbkey []byte, f func(v *wire.Value)) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.readerCheck(dbkey); err != nil {
		return err
	}
	start := time.Now()
	lr := localReadPool.Get().(*localRead)
	defer lr.put()
	rec, buf, err := s.db.Get(dbkey, lr.buf)
	lr.buf = buf
	if err == nil || errors.Is(err, store.ErrNotFound) {
		s.cmdGet.Add(1) // not for a refusal: the RPC that follows counts it
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.m.miss.Inc()
		f(nil)
	case err != nil:
		if errors.Is(err, store.ErrCorrupt) {
			s.noteCorrupt()
		}
		return err
	case !s.visible(&rec, start.Unix()):
		s.m.miss.Inc()
		f(nil)
	default:
		s.m.get.Inc()
		s.noteRead(dbkey, &rec, start.Unix())
		lr.v = recordValue(&rec)
		f(&lr.v)
	}
	s.m.getLat.Observe(since(start))
	return nil
}

// localRead is ReadLocal's scratch, pooled: the store's read buffer and
// the value handed to f (a local Value would escape through f, one
// allocation per get).
type localRead struct {
	buf []byte
	v   wire.Value
}

var localReadPool = sync.Pool{New: func() any { return new(localRead) }}

func (lr *localRead) put() {
	lr.v = wire.Value{}
	if cap(lr.buf) > 1<<20 {
		return // do not pin big buffers
	}
	lr.buf = lr.buf[:0]
	localReadPool.Put(lr)
}

// ErrNotLocal is returned by WriteLocal for a write it does not start;
// the caller sends it through RPC instead.
var ErrNotLocal = errors.New("server: write not served in place")

// WriteLocal stores v (its Data, Flags and Exptime) under dbkey for a
// gateway embedded in this process, as a SrvStore of mode OpSet would:
// decided under the key's lock, stamped, stored, and replicated to every
// other active owner. done is called once, possibly before WriteLocal
// returns, with the stored version's clock (the CAS unique) after every
// replica stored it, or with the error the RPC would have answered.
//
// WriteLocal returns an error and does not call done when the write is
// not started: this server is not the key's coordinator now, the key
// must first be fetched from its old owners (a rebalance), or the store
// syncs every write (group commit wants each write on a goroutine of its
// own), or the server is closing (the gateway using it must be closed
// before the server). dbkey and v.Data are valid only during the call.
//
// The requests to the replicas are held in rb, if not nil, until the
// caller flushes it (the batch of an event loop's round: one write per
// replica for all the sets of the round).
func (s *Server) WriteLocal(dbkey []byte, v *wire.Value, rb *rpc.Batch, done func(ct uint64, err error)) error {
	h, w, r, err := s.localWriteCheck(dbkey)
	if err != nil {
		return err
	}
	s.cmdSet.Add(1)
	op := writeOp{method: wire.SrvStore, mode: wire.OpSet, dbkey: dbkey,
		val: wire.Value{Flags: v.Flags, Exptime: v.Exptime, Data: v.Data}}
	s.decideAndReplicate(localSetReply(done), &op, h, w, r, rb)
	return nil
}

// SetDirectLocal stores a direct set (wire.SrvSetDirect) of v under dbkey
// for a gateway embedded in this process, in place: stored and clk are
// what the RPC would answer. It does not take the set (taken false; the
// gateway then sends it through RPC) when the store syncs every write
// (group commit wants each write on a goroutine of its own) or the server
// is closing. A store failure is not taken as stored: the gateway then
// sends the set through the coordinator, which reports it. dbkey and
// v.Data are valid only during the call.
func (s *Server) SetDirectLocal(dbkey []byte, v *wire.Value, wc uint64) (taken, stored bool, clk uint64) {
	if s.closed.Load() || len(dbkey) < 8 || s.cfg.Store.Sync == store.SyncAlways {
		return false, false, 0
	}
	stored, err := s.setDirect(dbkey, v, wc, s.clk.Observe(v.Clock) == nil)
	if stored {
		s.m.direct.Inc()
	} else {
		s.m.directRefused.Inc()
		if err != nil {
			s.log.Debugf("direct set of %q: %v", dbkey[8:], err)
		}
	}
	return true, stored, s.clk.Current()
}

// DeleteLocal deletes dbkey for a gateway embedded in this process, as a
// SrvRemove without a CAS would: done is called once, possibly before
// DeleteLocal returns, with found (a live value was replaced by a
// tombstone, on every replica) or an error. It refuses as WriteLocal does.
func (s *Server) DeleteLocal(dbkey []byte, rb *rpc.Batch, done func(found bool, err error)) error {
	h, w, r, err := s.localWriteCheck(dbkey)
	if err != nil {
		return err
	}
	s.cmdDelete.Add(1)
	op := writeOp{method: wire.SrvRemove, dbkey: dbkey}
	s.decideAndReplicate(localDeleteReply(done), &op, h, w, r, rb)
	return nil
}

// localWriteCheck returns the hash and hash spaces of a local write of
// dbkey, or why it must go through RPC instead.
func (s *Server) localWriteCheck(dbkey []byte) (h uint64, w, r *ring.HashSpace, err error) {
	if s.closed.Load() {
		return 0, nil, nil, ErrClosed // the embedded gateway closes first; this is a backstop
	}
	if len(dbkey) < 8 || s.cfg.Store.Sync == store.SyncAlways {
		return 0, nil, nil, ErrNotLocal
	}
	h, _, _ = wire.SplitDBKey(dbkey)
	if w, r, err = s.coordinatorCheck(h); err != nil {
		return 0, nil, nil, err
	}
	if s.catchUpNeeded(h, w, r) {
		return 0, nil, nil, ErrNotLocal
	}
	return h, w, r, nil
}

// localSetReply hands the outcome of a WriteLocal to its done (a func
// type, so that it becomes a writeReply without allocating).
type localSetReply func(ct uint64, err error)

func (l localSetReply) fail(err error) { l(0, err) }

func (l localSetReply) status(_ *rpc.Batch, _ *writeOp, status int, ct uint64, _ func([]byte) []byte) {
	if status != wire.StatusOK { // not for a plain set; kept for completeness
		l(0, statusErr(status))
		return
	}
	l(ct, nil)
}

// localDeleteReply hands the outcome of a DeleteLocal to its done.
type localDeleteReply func(found bool, err error)

func (l localDeleteReply) fail(err error) { l(false, err) }

func (l localDeleteReply) status(_ *rpc.Batch, _ *writeOp, status int, _ uint64, _ func([]byte) []byte) {
	switch status {
	case wire.StatusOK:
		l(true, nil)
	case wire.StatusNotFound:
		l(false, nil)
	default:
		l(false, statusErr(status))
	}
}

// statusErr is a local write's unexpected status as an error.
func statusErr(status int) error { return &rpc.Error{Msg: "status " + strconv.Itoa(status)} }
