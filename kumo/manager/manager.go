// Package manager implements kumo-manager: it tracks which servers are
// alive, owns the authoritative write and read hash spaces, detects failed
// servers within seconds, drives rebalancing ("replace") and answers kumoctl.
//
// Locking: mu protects the whole membership state; it is never held while
// waiting for the network (RPCs are sent with Go, or after unlocking).
// Shutdown order: stop the RPC server, stop the loops, close partner links.
package manager

import (
	"context"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"kumofs/internal/logging"
	"kumofs/internal/loglimit"
	"kumofs/internal/metrics"
	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// Config is what a kumo-manager is started with.
type Config struct {
	Self         ring.Addr     // advertised address (-l)
	Listen       string        // listen address; defaults to Self
	Partner      string        // -p: the other manager of the pair, or ""
	AutoReplace  bool          // -a
	ReplaceDelay time.Duration // -Rs
	// LostTimeout is how long a server may stay disconnected before it is
	// marked fault; KeepAliveTimeout how long it may stay silent on an open
	// connection (a hung process or a cut network).
	LostTimeout      time.Duration
	KeepAliveTimeout time.Duration
	// VirtualNodes per server in the hash spaces this manager builds:
	// 0 or 128 is kumofs's placement; more spreads keys more evenly (an
	// opt-in that kumofs nodes cannot read). Both managers of a pair must
	// be given the same value.
	VirtualNodes int
	MaxRPCConns  int // connections on the RPC port at once; 0 = rpc.DefaultMaxConns
	Log          *logging.Logger
	Clock        *clock.Clock
	Metrics      *metrics.Registry // nil: a private registry
}

// srvState is what the manager knows of one connected server.
type srvState struct {
	conn *rpc.Conn // the connection its keepalives come on
	// others are further open connections that said hello with the same
	// address: the previous connection of a server that reconnected, or
	// one from a stranger claiming the address. One that sends a
	// keepalive becomes conn; when conn closes, an open one takes its
	// place, so closing a stranger's connection does not mark the server
	// lost.
	others []*rpc.Conn
	inc    uint64 // incarnation the server reported
	// accepted is the incarnation this manager attached (or learned its
	// partner attached): the one its write space's "active" stands for.
	// 0 until then; an incarnation merely seen is not accepted (a manager
	// that restarted cannot tell a server's restart from its first
	// keepalive).
	accepted uint64
	lastSeen time.Time
	lost     *time.Timer
	full     bool // it reports that its disk is full
	// heardThere is set while the server is lost here but the partner
	// hears it, so it is not marked fault (see lostNode).
	heardThere bool
}

// replaceState tracks a replace in progress.
type replaceState struct {
	time     uint64 // whs clock the replace was started with
	full     bool
	copying  map[ring.Addr]bool
	deleting map[ring.Addr]bool
	failed   bool
	started  time.Time
}

// Manager is a running kumo-manager.
type Manager struct {
	cfg Config
	log *logging.Logger
	clk *clock.Clock
	ln  net.Listener
	srv *rpc.Server

	// helloWarn and helloInfo limit the lines about hellos: anything
	// that reaches the port could write one per connection (hunt 27c:
	// 25,000 a second). Connections of servers and the partner get a
	// burst large enough for a whole cluster reconnecting.
	helloWarn, helloInfo *loglimit.Limiter

	partner *rpc.Client
	// partnerSeen is when the partner last answered (unix nanoseconds):
	// a partner whose connection stays open but who stopped answering (a
	// hung process, a stalled VM) leads nothing (see partnerUp).
	partnerSeen atomic.Int64
	// partnerAuto is whether the partner runs automatic replaces, from
	// its last ping answer (true until one says otherwise).
	partnerAuto atomic.Bool
	m           managerMetrics

	mu          sync.Mutex // protects the fields below
	whs, rhs    *ring.HashSpace
	servers     map[ring.Addr]*srvState
	newcomers   []ring.Addr
	gateways    map[*rpc.Conn]struct{}
	autoReplace bool
	replace     *replaceState
	electionSeq int
	// fullNext makes the next replace a full one: attach built the write
	// space from none (see attach).
	fullNext bool
	// For checkUnfinished: since when the write space has differed from
	// the read space with no replace here, the last replace message from
	// a server, and whether a check is running.
	pendingSince, lastReplaceMsg time.Time
	checking                     bool

	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup
	closed atomic.Bool
}

// New starts a manager listening on cfg.Listen.
func New(cfg Config) (*Manager, error) {
	if cfg.Log == nil {
		cfg.Log = logging.New(os.Stderr, logging.Info).With("manager")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New(clock.Options{})
	}
	if cfg.ReplaceDelay <= 0 {
		cfg.ReplaceDelay = 4 * time.Second
	}
	if cfg.LostTimeout <= 0 {
		cfg.LostTimeout = 1500 * time.Millisecond
	}
	if cfg.KeepAliveTimeout <= 0 {
		cfg.KeepAliveTimeout = 3 * time.Second
	}
	if cfg.Listen == "" {
		cfg.Listen = cfg.Self.String()
	}
	if cfg.VirtualNodes == 0 {
		cfg.VirtualNodes = ring.DefaultVirtualNodes
	}
	if err := ring.CheckVirtualNodes(cfg.VirtualNodes); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:         cfg,
		log:         cfg.Log,
		clk:         cfg.Clock,
		ln:          ln,
		helloWarn:   loglimit.New(cfg.Log.Func(logging.Warn)),
		helloInfo:   loglimit.NewBurst(cfg.Log.Func(logging.Info), 200),
		whs:         ring.NewWithVirtualNodes(nil, 0, cfg.VirtualNodes),
		rhs:         ring.NewWithVirtualNodes(nil, 0, cfg.VirtualNodes),
		servers:     make(map[ring.Addr]*srvState),
		gateways:    make(map[*rpc.Conn]struct{}),
		autoReplace: cfg.AutoReplace,
	}
	m.partnerAuto.Store(true)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewRegistry()
	}
	m.registerMetrics(cfg.Metrics)
	m.srv = &rpc.Server{
		Handler:  rpc.HandlerFunc(m.serveRPC),
		OnHello:  m.onHello,
		OnClose:  m.onClose,
		Logf:     m.log.Func(logging.Warn),
		MaxConns: cfg.MaxRPCConns,
		// A manager's messages are small (a hash space of 1,000 servers
		// is 24 KB): frames up to 8 MiB, and 32 MiB of replies owed on all
		// connections before one that owes any waits for its peer to
		// read. With a server's 64 MiB and 256 MiB, a thousand
		// connections asking for hash spaces and reading none took a
		// manager to 1.5 GB and starved its keepalive handling.
		MaxFrame:   8 << 20,
		MaxReplies: 32 << 20,
	}
	m.loops.Add(2)
	go func() {
		defer m.loops.Done()
		if err := m.srv.Serve(ln); err != nil && !m.closed.Load() {
			m.log.Errorf("rpc server stopped: %v", err)
		}
	}()
	go m.watchdog()
	if cfg.Partner != "" {
		m.partner = rpc.Dial(cfg.Partner, rpc.Options{
			Logf:        m.log.Func(logging.Debug),
			Hello:       &rpc.Hello{Addr: cfg.Self.Dump(), Role: wire.RoleManager},
			CallTimeout: 3 * time.Second,
			Handler:     rpc.HandlerFunc(m.serveRPC),
			OnDown: func(failures int, err error) {
				if failures == 0 { // a connection that was up
					m.log.Warnf("partner %s disconnected: %v", cfg.Partner, err)
				}
			},
			OnUp: func(c *rpc.Conn) {
				m.partnerSeen.Store(time.Now().UnixNano())
				m.log.Infof("partner connected: %s (our connection to it)", cfg.Partner)
				// Over c, not m.partner: the first connection can come up
				// before Dial has returned and m.partner is set (a race
				// the detector found when the partner listens already).
				m.syncTo(c)
			},
		})
		m.loops.Add(1)
		go m.pingPartner()
	}
	return m, nil
}

// pingPartner sends the partner this manager's hash spaces every quarter
// of the keepalive timeout and notes when it answers, until the manager
// closes. Its connection alone says nothing of a partner that hangs. The
// spaces make the ping a sync as well: a change whose sync was lost (the
// partner hung past the call timeout, its connection open) reaches it
// within a ping, and the partner, pinging back, brings this manager its
// newer ones; each side takes only what is newer.
func (m *Manager) pingPartner() {
	defer m.loops.Done()
	t := time.NewTicker(max(100*time.Millisecond, m.cfg.KeepAliveTimeout/4))
	defer t.Stop()
	silent := false
	for {
		if c := m.partner.Conn(); c != nil {
			ctx, cancel := context.WithTimeout(m.ctx, m.cfg.KeepAliveTimeout)
			res, err := m.partner.Call(ctx, wire.MgrHashSpaceSync, m.syncArgs())
			cancel()
			switch {
			case err == nil:
				m.partnerAuto.Store(partnerAutoReplace(res.Bytes()))
				res.Release()
				m.partnerSeen.Store(time.Now().UnixNano())
				if silent {
					silent = false
					m.log.Infof("partner %s answers again", m.cfg.Partner)
				}
			case !silent && !m.partnerUp() && !isDone(c.Done()) && m.ctx.Err() == nil:
				silent = true
				m.log.Warnf("partner %s connected but silent for %v: it leads nothing until it answers", m.cfg.Partner, m.cfg.KeepAliveTimeout)
				// An election the partner was to run may have passed it
				// by: hold it again here.
				m.scheduleAutoReplace()
			}
		}
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Addr returns the listening address.
func (m *Manager) Addr() net.Addr { return m.ln.Addr() }

// Close stops the manager.
func (m *Manager) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	m.cancel()
	m.srv.Close()
	if m.partner != nil {
		m.partner.Close()
	}
	m.mu.Lock()
	for _, s := range m.servers {
		if s.lost != nil {
			s.lost.Stop()
		}
	}
	m.mu.Unlock()
	m.loops.Wait()
	return nil
}

func (m *Manager) onHello(c *rpc.Conn, h rpc.Hello) *rpc.Hello {
	addr, err := ring.AddrFromDump(h.Addr)
	if err != nil {
		m.helloWarn.Logf("bad hello from %s: %v", c.RemoteAddr(), err)
		return nil
	}
	reply := &rpc.Hello{Addr: m.cfg.Self.Dump(), Role: wire.RoleManager}
	switch h.Role {
	case wire.RoleServer:
		c.SetValue(addr)
		m.mu.Lock()
		s := m.servers[addr]
		if s == nil {
			s = &srvState{}
			m.servers[addr] = s
		}
		if s.lost != nil {
			s.lost.Stop()
			s.lost = nil
		}
		if s.heardThere {
			s.heardThere = false
			m.log.Infof("server %s heard here again", addr)
		}
		if s.conn != nil && s.conn != c {
			s.others = append(s.others, s.conn)
		}
		s.conn = c
		s.others = slices.DeleteFunc(s.others, connClosed)
		s.lastSeen = time.Now()
		isNew := false
		if !m.whs.IsActive(addr) && !m.isNewcomer(addr) {
			m.newcomers = append(m.newcomers, addr)
			isNew = true
		}
		m.mu.Unlock()
		if isNew {
			m.helloInfo.Logf("new node %s", addr)
			m.scheduleAutoReplace()
		} else {
			m.helloInfo.Logf("server connected %s", addr)
		}
	case wire.RoleManager:
		m.helloInfo.Logf("partner connected: %s (its connection to us)", addr)
		// Send our hash spaces down the partner's own connection at once:
		// a restarted partner has none, and our client to it may still be
		// backing off.
		go m.syncTo(c)
	default:
		m.helloWarn.Logf("unknown role %d from %s", h.Role, addr)
	}
	return reply
}

func (m *Manager) isNewcomer(a ring.Addr) bool {
	for _, n := range m.newcomers {
		if n == a {
			return true
		}
	}
	return false
}

func (m *Manager) onClose(c *rpc.Conn) {
	m.mu.Lock()
	delete(m.gateways, c)
	addr, ok := c.Value().(ring.Addr)
	if !ok {
		m.mu.Unlock()
		return
	}
	s := m.servers[addr]
	if s == nil {
		m.mu.Unlock()
		return
	}
	if s.conn != c {
		s.others = slices.DeleteFunc(s.others, func(o *rpc.Conn) bool { return o == c })
		m.mu.Unlock()
		return
	}
	s.conn = nil
	for len(s.others) > 0 && s.conn == nil {
		o := s.others[len(s.others)-1]
		s.others = s.others[:len(s.others)-1]
		if !connClosed(o) {
			s.conn = o
		}
	}
	if s.conn != nil {
		m.mu.Unlock()
		return
	}
	if s.lost == nil {
		s.lost = time.AfterFunc(m.cfg.LostTimeout, func() { m.lostIfGone(addr) })
	}
	m.mu.Unlock()
}

// connClosed reports whether c has closed.
func connClosed(c *rpc.Conn) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// promote makes c, one of s.others, the connection s is watched on (its
// keepalives come there); it reports false if c is not one of them.
// Called with m.mu held.
func (s *srvState) promote(c *rpc.Conn) bool {
	i := slices.Index(s.others, c)
	if i < 0 {
		return false
	}
	if s.conn != nil {
		s.others[i] = s.conn
	} else {
		s.others = slices.Delete(s.others, i, i+1)
	}
	s.conn = c
	return true
}

// rhsClock returns the timestamp for an edit of the read hash space made
// together with an edit of the write hash space stamped ct: ct itself when
// both spaces are the same (no replace in progress), else a newer clock, so
// that the two stay different and servers keep treating the replace as
// unfinished (by-rhs replication, catch-up reads) until it completes.
// Called with m.mu held.
func (m *Manager) rhsClock(ct uint64) uint64 {
	if m.whs.Clock() == m.rhs.Clock() && m.whs.Equal(m.rhs) {
		return ct
	}
	return m.clk.Now()
}

// lostIfGone marks addr lost unless it reconnected meanwhile.
func (m *Manager) lostIfGone(addr ring.Addr) {
	m.mu.Lock()
	s := m.servers[addr]
	if s == nil || s.conn != nil {
		if s != nil && s.heardThere {
			s.heardThere = false
			m.log.Infof("server %s heard here again", addr)
		}
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	m.lostNode(addr)
}

// watchdog closes the connection of a server that stopped sending keepalives
// and marks it lost.
func (m *Manager) watchdog() {
	defer m.loops.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	prev := time.Now()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		silent, conns, stalled := m.checkSilent(now, prev)
		if stalled {
			m.log.Warnf("manager did not run for %v (paused or starved); servers get a fresh %v to be heard",
				now.Sub(prev).Round(time.Millisecond), m.cfg.KeepAliveTimeout)
		}
		prev = now
		for i, a := range silent {
			m.log.Warnf("server %s silent for %v", a, m.cfg.KeepAliveTimeout)
			conns[i].Close()
			m.lostNode(a)
		}
		m.checkUnfinished(now)
	}
}

// checkSilent takes the connections of the servers silent for longer than
// the keepalive timeout at now (the watchdog's previous look was at prev)
// and returns them. If the manager itself did not run for a good part of
// that timeout (a paused VM, SIGSTOP, a starved process), the silence may
// be its own: it blames no one and gives every server a fresh timeout from
// now instead (stalled). A server that really died is then found one
// timeout later, or at once when its connection breaks.
func (m *Manager) checkSilent(now, prev time.Time) (silent []ring.Addr, conns []*rpc.Conn, stalled bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(prev) > max(time.Second, m.cfg.KeepAliveTimeout/2) {
		for _, s := range m.servers {
			if s.conn != nil && s.lastSeen.Before(now) {
				s.lastSeen = now
			}
		}
		return nil, nil, true
	}
	for a, s := range m.servers {
		if s.conn != nil && now.Sub(s.lastSeen) > m.cfg.KeepAliveTimeout {
			silent = append(silent, a)
			conns = append(conns, s.conn)
			s.conn = nil
		}
	}
	return silent, conns, false
}

// lostNode marks a server fault in both hash spaces and tells everyone,
// unless the partner still hears it: a manager cut off from servers its
// partner reaches must not take them out of the cluster (the partner
// adopts the newer space, and servers that took its steps towards "every
// server fault" ran on one copy, which an attach after the heal then
// overwrote from the others). It asks again a keepalive timeout later
// while the server stays away from this manager; if the server dies, the
// partner marks it fault and this manager adopts that.
func (m *Manager) lostNode(addr ring.Addr) {
	if m.partnerHears(addr) {
		m.mu.Lock()
		s := m.servers[addr]
		if s != nil && s.conn == nil {
			if s.lost != nil {
				s.lost.Stop()
			}
			s.lost = time.AfterFunc(m.cfg.KeepAliveTimeout, func() { m.lostIfGone(addr) })
			if !s.heardThere {
				s.heardThere = true
				m.log.Warnf("server %s is not heard here, but the partner hears it: not marked fault", addr)
			}
		}
		m.mu.Unlock()
		return
	}
	m.mu.Lock()
	s := m.servers[addr]
	if s != nil {
		s.heardThere = false
		if s.lost != nil {
			s.lost.Stop()
		}
		if s.conn != nil {
			m.mu.Unlock()
			return // it came back
		}
		// The record stays, with the incarnation last seen: the server's
		// next process is then told from a reconnect of this one. (A
		// partner's newer space can have it active again, when both
		// managers marked their losses at once as every server stopped;
		// a new incarnation must not be taken back without an attach.)
		s.lost = nil
	}
	for i, n := range m.newcomers {
		if n == addr {
			m.newcomers = append(m.newcomers[:i], m.newcomers[i+1:]...)
			break
		}
	}
	ct := m.clk.Now()
	changed := false
	rct := m.rhsClock(ct) // before whs changes
	if w, ok := m.whs.WithFault(addr, ct); ok {
		m.whs, changed = w, true
	}
	if r, ok := m.rhs.WithFault(addr, rct); ok {
		m.rhs, changed = r, true
	}
	abort := false
	if r := m.replace; r != nil && (r.copying[addr] || r.deleting[addr]) {
		// The replace cannot finish with this server gone: the next
		// replace starts over and completes the job.
		m.replace = nil
		abort = true
	}
	m.mu.Unlock()
	m.log.Warnf("lost node %s", addr)
	if abort {
		m.m.aborted.Inc()
		m.log.Warnf("replace aborted: %s lost; the next replace finishes the job", addr)
	}
	if changed {
		m.broadcast()
	}
	m.scheduleAutoReplace()
}

// seeds returns encoded copies of the current hash spaces.
func (m *Manager) seeds() (w, r *ring.HashSpace) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.whs, m.rhs
}

// broadcast sends the current hash spaces to every server, every gateway and
// the partner.
func (m *Manager) broadcast() { m.broadcastTo(true) }

func (m *Manager) broadcastTo(partner bool) {
	m.mu.Lock()
	w, r := m.whs, m.rhs
	var conns []*rpc.Conn
	for _, s := range m.servers {
		if s.conn != nil {
			conns = append(conns, s.conn)
		}
	}
	var gws []*rpc.Conn
	for c := range m.gateways {
		gws = append(gws, c)
	}
	m.mu.Unlock()
	ct := m.clk.Now()
	for _, c := range conns {
		c.Go(wire.SrvHashSpaceSync, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 3)
			b = w.AppendSeed(b)
			b = r.AppendSeed(b)
			return msgpack.AppendUint(b, ct)
		}, 3*time.Second, m.countErr)
	}
	for _, c := range gws {
		c.Go(wire.GwHashSpacePush, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = w.AppendSeed(b)
			return r.AppendSeed(b)
		}, 3*time.Second, func([]byte, error) {})
	}
	if partner {
		m.syncPartner()
	}
}

// countErr is an RPC completion that only counts failures.
func (m *Manager) countErr(_ []byte, err error) {
	if err != nil {
		m.m.rpcErrs.Count(rpc.ErrorKind(err))
	}
}

// syncTo sends our hash spaces over c (a connection from the partner).
func (m *Manager) syncTo(c *rpc.Conn) {
	w, r := m.seeds()
	if w.Empty() && r.Empty() {
		return
	}
	c.Go(wire.MgrHashSpaceSync, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = w.AppendSeed(b)
		b = r.AppendSeed(b)
		return msgpack.AppendUint(b, m.clk.Now())
	}, 3*time.Second, func([]byte, error) {})
}

// syncPartner sends our hash spaces to the partner manager.
func (m *Manager) syncPartner() {
	if m.partner == nil {
		return
	}
	m.partner.Go(wire.MgrHashSpaceSync, m.syncArgs(), 3*time.Second, func([]byte, error) {})
}

// syncArgs returns the append function of MgrHashSpaceSync's params: the
// current hash spaces and the clock. The spaces are taken here, not in the
// append function, which runs under the connection's write lock.
func (m *Manager) syncArgs() func([]byte) []byte {
	w, r := m.seeds()
	return func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = w.AppendSeed(b)
		b = r.AppendSeed(b)
		return msgpack.AppendUint(b, m.clk.Now())
	}
}

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// partnerLeads reports whether the partner manager runs automatic
// replaces: of two connected managers the one with the smaller address
// leads (kumofs's election, without its lost-reply timeouts). A partner that
// is down, or has not answered for the keepalive timeout, leads nothing;
// nor does one whose automatic replace is off (its last ping answer said
// so): a pair started with -a on one manager only, or switched on at one
// with kumoctl, then replaces automatically from that one.
func (m *Manager) partnerLeads() bool {
	if m.partner == nil {
		return false
	}
	p, err := ring.ParseAddr(m.cfg.Partner, 19700)
	if err != nil || p.Compare(m.cfg.Self) > 0 {
		return false
	}
	return m.partnerUp() && m.partnerAuto.Load()
}

// scheduleAutoReplace runs an election ReplaceDelay after the last
// membership change, when auto-replace is on (a debounce).
func (m *Manager) scheduleAutoReplace() {
	m.mu.Lock()
	if !m.autoReplace || m.closed.Load() {
		m.mu.Unlock()
		return
	}
	m.electionSeq++
	seq := m.electionSeq
	m.mu.Unlock()
	time.AfterFunc(m.cfg.ReplaceDelay, func() {
		m.mu.Lock()
		run := seq == m.electionSeq && m.autoReplace && !m.closed.Load()
		m.mu.Unlock()
		if !run || m.partnerLeads() {
			return
		}
		m.attach()
		m.detach()
		m.startReplace(false)
	})
}
