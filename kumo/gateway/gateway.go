// Package gateway implements kumo-gateway: it follows the managers' hash
// spaces and serves the memcached protocols, routing every write to the
// key's coordinator (first active owner in the write hash space) and every
// read to an owner in the read hash space, failing over to the next owner
// and retrying with the current hash space before it answers SERVER_ERROR.
//
// Many client connections share one RPC connection per server; concurrent
// requests to one server are coalesced into shared writes by proto/rpc.
//
// Shutdown order: close the memcached listeners, then the manager links,
// then the server connections.
package gateway

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"kumofs/internal/logging"
	"kumofs/internal/metrics"
	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/memcache"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// MaxItemLimit is the largest item size (Config.MaxItemSize, -I) a gateway
// takes: a value travels to and from the servers in one RPC frame, which
// they refuse past rpc.DefaultMaxFrame; 1 MiB is left for the key and the
// headers.
const MaxItemLimit = rpc.DefaultMaxFrame - 1<<20

// Config is what a kumo-gateway is started with.
type Config struct {
	Managers     []string // -m, -p
	Text         string   // -t listen address, or ""
	Binary       string   // -b listen address, or ""
	KeyPrefix    []byte   // -k
	RetryTimeout time.Duration
	CallTimeout  time.Duration // per read RPC; default 3 s
	// WriteTimeout is the per-call deadline of a write. It must exceed
	// the servers' replication timeout, or a slow but successful write is
	// retried (and a retried delete or incr is not idempotent). Default 8 s.
	WriteTimeout time.Duration
	MaxItemSize  int // at most MaxItemLimit
	MaxConns     int
	// NoEventLoop serves every client connection on a goroutine of its
	// own instead of the event loop (see memcache.BatchBackend).
	NoEventLoop bool
	EventLoops  int // see memcache.Server.EventLoops
	Log         *logging.Logger
	Metrics     *metrics.Registry // nil: a private registry

	// Local and DialLocal embed the gateway in a server's process
	// (kumo-server -t): the server whose address is Local is reached
	// through DialLocal (an in-process pipe) instead of TCP.
	Local     ring.Addr
	DialLocal func() (net.Conn, error)
	// ReadLocal, if set with Local, reads a key that the local server
	// would answer first straight from it, without RPC (see
	// kumo/server.Server.ReadLocal): f is called with the value, or nil
	// for a miss, unless ReadLocal fails, and then the key is read through
	// DialLocal's connection as usual. v is valid only during f.
	ReadLocal func(dbkey []byte, f func(v *wire.Value)) error
	// WriteLocal, if set with Local, starts a plain set whose coordinator
	// is the local server in it directly (kumo/server.Server.WriteLocal):
	// done is called once with the CAS unique or an error, unless
	// WriteLocal fails, and then the set goes through DialLocal's
	// connection as usual. dbkey and v.Data are valid only during the call.
	// The requests to replicas may be held in rb (if not nil) until it is
	// flushed.
	WriteLocal func(dbkey []byte, v *wire.Value, rb *rpc.Batch, done func(ct uint64, err error)) error
	// DeleteLocal, like WriteLocal, starts a delete (without CAS) whose
	// coordinator is the local server in it directly; done gets whether a
	// live value was deleted (kumo/server.Server.DeleteLocal).
	DeleteLocal func(dbkey []byte, rb *rpc.Batch, done func(found bool, err error)) error
	// NoDirectSets sends every plain set to its key's coordinator, as
	// kumofs did, instead of to every owner at once (see setDirect).
	NoDirectSets bool
	// SetDirectLocal, if set with Local, stores a direct set (see
	// setDirect) in the local server in place, as its SrvSetDirect would
	// (kumo/server.Server.SetDirectLocal): taken false means it did not,
	// and the set goes through DialLocal's connection as usual; stored
	// and clk are the answer otherwise. dbkey and v.Data are valid only
	// during the call.
	SetDirectLocal func(dbkey []byte, v *wire.Value, wc uint64) (taken, stored bool, clk uint64)
	// Clock stamps the plain sets the gateway sends to every owner at
	// once (see setDirect); nil: a clock of its own.
	Clock *clock.Clock
}

// Gateway is a running kumo-gateway.
type Gateway struct {
	cfg Config
	log *logging.Logger

	whs      atomic.Pointer[ring.HashSpace]
	rhs      atomic.Pointer[ring.HashSpace]
	allFault atomic.Bool // the newest write space seen has no active server (see adoptSeeds)

	mgrs    []*rpc.Client
	refresh chan struct{} // asks the hash-space loop to fetch now

	srvMu   sync.Mutex                                // serializes changes of servers
	servers atomic.Pointer[map[ring.Addr]*rpc.Client] // copy-on-write

	m gwMetrics

	// noMulti and noDirect are SrvGetMulti and SrvSetDirect while a
	// server answered them with a protocol error (a server older than the
	// method): keys are then read one by one, and plain sets go through
	// coordinators, until the method is tried again (see fallback).
	noMulti    fallback
	noDirect   fallback
	diskFullAt atomic.Int64 // unix ns of the last disk-full answer (see write)
	clk        *clock.Clock // stamps direct sets

	// reqBase and reqSeq make the request ids of writes that must not
	// be applied twice (see nextReqID).
	reqBase uint64
	reqSeq  atomic.Uint64

	mc  *memcache.Server
	lns []net.Listener

	ready     chan struct{} // closed when the first non-empty hash space arrived
	readyOnce sync.Once

	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup
	closed atomic.Bool
}

// New starts a gateway: it connects to the managers and opens the memcached
// listeners at once.
func New(cfg Config) (*Gateway, error) {
	if cfg.Log == nil {
		cfg.Log = logging.New(os.Stderr, logging.Info).With("gateway")
	}
	if cfg.RetryTimeout <= 0 {
		cfg.RetryTimeout = 10 * time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 3 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 8 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New(clock.Options{MaxAhead: clock.DefaultMaxAhead})
	}
	g := &Gateway{cfg: cfg, log: cfg.Log, refresh: make(chan struct{}, 1), ready: make(chan struct{}),
		reqBase: rand.Uint64(), clk: cfg.Clock}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewRegistry()
	}
	g.registerMetrics(cfg.Metrics)
	g.ctx, g.cancel = context.WithCancel(context.Background())
	empty := ring.New(nil, 0)
	g.whs.Store(empty)
	g.rhs.Store(empty)
	m := map[ring.Addr]*rpc.Client{}
	g.servers.Store(&m)
	g.mc = &memcache.Server{
		Backend:     g,
		MaxItemSize: cfg.MaxItemSize,
		MaxConns:    cfg.MaxConns,
		Logf:        g.log.Func(logging.Warn),
		NoEventLoop: cfg.NoEventLoop,
		EventLoops:  cfg.EventLoops,
	}
	for _, addr := range []string{cfg.Text, cfg.Binary} {
		if addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range g.lns {
				l.Close()
			}
			return nil, err
		}
		g.lns = append(g.lns, ln)
	}
	for _, a := range cfg.Managers {
		g.mgrs = append(g.mgrs, g.dialManager(a))
	}
	g.loops.Add(1)
	go g.hashSpaceLoop()
	for _, ln := range g.lns {
		ln := ln
		g.loops.Add(1)
		go func() {
			defer g.loops.Done()
			if err := g.mc.Serve(ln); err != nil && !g.closed.Load() {
				g.log.Errorf("memcached listener %s stopped: %v", ln.Addr(), err)
			}
		}()
	}
	return g, nil
}

// Addrs returns the listening addresses (text first, when given).
func (g *Gateway) Addrs() []net.Addr {
	var a []net.Addr
	for _, l := range g.lns {
		a = append(a, l.Addr())
	}
	return a
}

// Ready is closed once the gateway has a hash space to route with.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Close stops the gateway.
func (g *Gateway) Close() error {
	if g.closed.Swap(true) {
		return nil
	}
	g.cancel()
	g.mc.Close()
	for _, l := range g.lns {
		l.Close()
	}
	for _, m := range g.mgrs {
		m.Close()
	}
	g.loops.Wait()
	g.srvMu.Lock()
	for _, c := range *g.servers.Load() {
		c.Close()
	}
	g.srvMu.Unlock()
	return nil
}

func (g *Gateway) dialManager(addr string) *rpc.Client {
	return rpc.Dial(addr, rpc.Options{
		Logf:        g.log.Func(logging.Debug),
		CallTimeout: g.cfg.CallTimeout,
		CloseSilent: true,
		Handler:     rpc.HandlerFunc(g.serveRPC),
		OnUp:        func(*rpc.Conn) { g.requestRefresh() },
	})
}

// serveRPC handles the manager's HashSpacePush.
func (g *Gateway) serveRPC(req *rpc.Request) {
	if req.Method != wire.GwHashSpacePush {
		req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unknown method"})
		return
	}
	_, p, err := msgpack.ReadArrayHeader(req.Params)
	if err == nil {
		g.adoptSeeds(p)
	}
	req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
}

func (g *Gateway) requestRefresh() {
	select {
	case g.refresh <- struct{}{}:
	default:
	}
}

// hashSpaceLoop fetches the hash spaces from the managers every 2 seconds,
// and at once when asked (after routing errors).
func (g *Gateway) hashSpaceLoop() {
	defer g.loops.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		heard := false
		for _, m := range g.mgrs {
			if g.fetch(m) {
				heard = true
			}
		}
		if !heard {
			g.fetchFromServers()
		}
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		case <-g.refresh:
		}
	}
}

// fetch asks manager m for the hash spaces; it reports whether m answered.
func (g *Gateway) fetch(m *rpc.Client) bool {
	ctx, cancel := context.WithTimeout(g.ctx, 2*time.Second)
	defer cancel()
	res, err := m.Call(ctx, wire.MgrHashSpaceRequest, emptyParams)
	if err != nil {
		return false
	}
	defer res.Release()
	_, p, err := msgpack.ReadArrayHeader(res.Bytes())
	if err == nil {
		g.adoptSeeds(p)
	}
	return true
}

// fetchFromServers asks the servers we know for their hash spaces, when
// no manager answers: a gateway cut off from the managers still learns of
// a server they marked fault from the servers that know, instead of
// reading from it (stale data) until the partition heals.
func (g *Gateway) fetchFromServers() {
	for _, n := range g.whs.Load().Nodes() {
		c := g.server(n.Addr)
		if c == nil {
			return
		}
		ctx, cancel := context.WithTimeout(g.ctx, time.Second)
		res, err := c.Call(ctx, wire.SrvHashSpaceRequest, emptyParams)
		cancel()
		if err != nil {
			continue
		}
		if _, p, err := msgpack.ReadArrayHeader(res.Bytes()); err == nil && g.adoptSeeds(p) {
			g.log.Infof("hash space learned from server %s: no manager answers", n.Addr)
		}
		res.Release()
	}
}

func emptyParams(b []byte) []byte { return msgpack.AppendArrayHeader(b, 0) }

// adoptSeeds reads [wseed, rseed] (without the array header) and installs
// them when not older than ours. It reports whether anything changed.
func (g *Gateway) adoptSeeds(p []byte) bool {
	w, p, err := ring.ReadSeed(p)
	if err != nil {
		return false
	}
	r, _, err := ring.ReadSeed(p)
	if err != nil {
		return false
	}
	changed := false
	if !w.Empty() && w.Clock() >= g.whs.Load().Clock() && !(w.Clock() == g.whs.Load().Clock() && w.Equal(g.whs.Load())) {
		g.whs.Store(w)
		changed = true
	}
	if !r.Empty() && r.Clock() >= g.rhs.Load().Clock() && !(r.Clock() == g.rhs.Load().Clock() && r.Equal(g.rhs.Load())) {
		g.rhs.Store(r)
		changed = true
	}
	// A newer write space in which every server is fault is not adopted
	// (requests keep the last owners and fail over as servers answer),
	// but Health reports it.
	g.allFault.Store(w.Empty() && w.NumNodes() > 0 && w.Clock() >= g.whs.Load().Clock())
	if changed {
		g.log.Debugf("hash space: whs %d nodes, rhs %d nodes", len(g.whs.Load().Nodes()), len(g.rhs.Load().Nodes()))
		g.redialActive()
	}
	if !g.whs.Load().Empty() && !g.rhs.Load().Empty() {
		g.readyOnce.Do(func() {
			g.log.Infof("connect success: hash space received")
			close(g.ready)
		})
	}
	return changed
}

// redialActive ends the reconnect backoff of every server the hash spaces
// call active: a server restarted and re-attached between two of our
// attempts would otherwise refuse us with "peer down" for up to the rest
// of a 2 s backoff, while writes for the keys it coordinates wait.
func (g *Gateway) redialActive() {
	servers := *g.servers.Load()
	for _, hs := range []*ring.HashSpace{g.whs.Load(), g.rhs.Load()} {
		for _, n := range hs.Nodes() {
			if c := servers[n.Addr]; c != nil && n.Active {
				c.Redial()
			}
		}
	}
}

// serverProbe finds a server cut off from us within about two seconds,
// instead of each call waiting out its timeout: servers answer SrvKeepAlive
// at once, whatever else they are doing.
var serverProbe = &rpc.Probe{Method: wire.SrvKeepAlive, Args: emptyParams, After: time.Second}

// server returns the RPC client for a server, dialing on first use.
func (g *Gateway) server(a ring.Addr) *rpc.Client {
	if c := (*g.servers.Load())[a]; c != nil {
		return c
	}
	g.srvMu.Lock()
	defer g.srvMu.Unlock()
	old := *g.servers.Load()
	if c := old[a]; c != nil {
		return c
	}
	if g.closed.Load() {
		return nil
	}
	opt := rpc.Options{
		Logf: g.log.Func(logging.Debug), CallTimeout: g.cfg.CallTimeout,
		CloseSilent: true, Probe: serverProbe}
	if a == g.cfg.Local && g.cfg.DialLocal != nil {
		dial := g.cfg.DialLocal
		opt.Dial = func(context.Context, string) (net.Conn, error) { return dial() }
	}
	c := rpc.Dial(a.String(), opt)
	m := make(map[ring.Addr]*rpc.Client, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[a] = c
	g.servers.Store(&m)
	return c
}
