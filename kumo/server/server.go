// Package server implements kumo-server: it keeps its share of the data in a
// store, coordinates the memcached commands for the keys it owns first in the
// write hash space, replicates every resulting record to the key's other
// owners before it answers, and copies data to new owners when the managers
// rebalance the cluster.
//
// Shutdown order: stop accepting RPCs (rpc server), stop the manager links
// and background loops, wait for in-flight replication, then close the store.
package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"kumofs/internal/logging"
	"kumofs/internal/metrics"
	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/rpc"
	"kumofs/ring"
	"kumofs/store"
)

// Config is what a kumo-server is started with (kumo-server's flags).
type Config struct {
	Self        ring.Addr // advertised address (-l)
	Listen      string    // address to listen on; defaults to Self
	StreamPort  int       // -L: rebalancing batches arrive here, off the request connection
	Managers    []string  // -m, -p
	StorePath   string    // -s
	Store       store.Options
	TmpDir      string        // -f
	ReplTimeout time.Duration // how long a write waits for a replica before failing
	CallTimeout time.Duration // per-RPC deadline between servers
	GarbageMax  time.Duration // -gX: tombstone age after which compaction drops them
	MaxRPCConns int           // connections on the RPC port at once; 0 = rpc.DefaultMaxConns
	Log         *logging.Logger
	Clock       *clock.Clock
	Metrics     *metrics.Registry // nil: a private registry
}

// Server is a running kumo-server.
type Server struct {
	cfg   Config
	log   *logging.Logger
	clk   *clock.Clock
	db    *store.DB
	start time.Time
	inc   uint64 // incarnation: random per process start, told to managers

	rpcSrv *rpc.Server
	ln     net.Listener
	local  *pipeListener // in-process connections (DialLocal)

	streamSrv *rpc.Server // serves ReplicateBatch on -L; nil without a stream port
	streamLn  net.Listener

	streamMu sync.Mutex                // protects streams
	streams  map[ring.Addr]*rpc.Client // peers' stream connections

	whs atomic.Pointer[ring.HashSpace] // write hash space
	rhs atomic.Pointer[ring.HashSpace] // read hash space

	kaNow chan struct{} // capacity 1: send the keepalives now (a manager connection came up)

	hsMu       sync.Mutex  // serializes hash-space adoption (readers use the atomics)
	refreshing atomic.Bool // a fenced write is fetching the hash spaces

	stripes [numStripes]sync.Mutex // per-key serialization of read-modify-write on the coordinator

	peersMu sync.Mutex // protects peers; taken after hsMu, never before
	peers   map[ring.Addr]*rpc.Client

	mgrs []*rpc.Client

	buckets        atomic.Uint64 // the store's slot capacity, for growth checks
	growing        atomic.Bool   // an online Optimize is running
	diskFull       atomic.Bool   // a store write failed with ENOSPC
	corrupt        atomic.Bool   // the store returned ErrCorrupt (diskfull.go)
	storeErrLogged atomic.Int64  // unix nanoseconds of the last store error logged (storeError)

	m serverMetrics

	cmdGet, cmdSet, cmdDelete atomic.Uint64
	access                    *accessTable  // reads of each key version, for mg h and l
	dedup                     *dedupTable   // outcomes of recent writes by request id
	recent                    writeLog      // recent direct and replicated writes by connection (repair.go)
	replState                 atomic.Uint32 // ReplCopying / ReplDeleting bits
	copyTime                  atomic.Uint64 // whs clock of the last replace copy started (StatCopyTime)

	// Whether the store is current (current.go): when a manager last
	// answered a keepalive, last confirmed the clock of our write space,
	// and last failed to answer; when the store was last marked current;
	// and, while stale records are purged, the keys copied in meanwhile.
	mgrAnswer, mgrConfirm, mgrFail atomic.Int64                // unix nanoseconds; mgrFail: since when every keepalive fails (0: one answered)
	lastCurrent                    atomic.Int64                // unix nanoseconds
	currentSince                   atomic.Int64                // unix nanoseconds: start of the current stint as current, 0 if not current (StatCurrentSince)
	prevSince                      atomic.Int64                // unix nanoseconds: the stint a break shorter than -gX continues (markCurrent), 0 for none
	stintPartial                   atomic.Bool                 // the last copy that brought this server back was not complete (copyComplete): its next stint holds nothing from before
	activeWhenCurrent              atomic.Pointer[[]ring.Addr] // the servers active in the write space when last current (nil: unknown)
	awayLong                       atomic.Bool                 // away longer than -gX since lastCurrent (checkAway)
	lastTick, pausedAt             atomic.Int64                // unix nanoseconds: pauseWatch's last tick, the end of the last stall it saw (0: none)
	mgrSynced                      atomic.Int64                // unix nanoseconds: start of the last keepalive after which we held the manager's hash spaces (or refused them)
	purging                        atomic.Bool
	purgeRun                       sync.Mutex          // held from a copy start that may purge until the purge is done (replace.go)
	purgeMu                        sync.Mutex          // protects purgeSeen and purgePending
	purgeSeen                      map[string]struct{} // keys stored from elsewhere while away (setAway), nil when not noting
	purgePending                   bool                // a copy start claimed the purge (beginPurgeNotes)

	repl sync.WaitGroup // in-flight replications and background jobs

	// The write handlers as func values, bound once in New: a method value
	// made per request would allocate (async may hand it to a goroutine).
	writeFn, setDirectFn, replicateFn func(*rpc.Request, *rpc.Batch)

	flushMu     sync.Mutex // protects flushTimers; orders a sweep's start against Close
	flushTimers []*time.Timer
	flushing    flushState // flush_all's flush point and sweeps (flush.go)

	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup
	closed atomic.Bool
}

// ErrClosed is returned by calls on a closed Server.
var ErrClosed = errors.New("server: closed")

// New opens the store and starts serving on cfg.Listen. It returns once the
// listener is up; the manager links connect in the background.
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = logging.New(os.Stderr, logging.Info).With("server")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.New(clock.Options{})
	}
	if cfg.ReplTimeout <= 0 {
		cfg.ReplTimeout = 5 * time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 3 * time.Second
	}
	if cfg.GarbageMax <= 0 {
		cfg.GarbageMax = time.Hour
	}
	if cfg.Listen == "" {
		cfg.Listen = cfg.Self.String()
	}
	// Listen first: a port that is taken must not leave a new, empty
	// store file behind.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	var sln net.Listener // the stream port's, likewise before the store
	if cfg.StreamPort > 0 {
		sln, err = net.Listen("tcp", net.JoinHostPort(cfg.Self.IP().String(), strconv.Itoa(cfg.StreamPort)))
		if err != nil {
			ln.Close()
			return nil, err
		}
	}
	closeListeners := func() {
		ln.Close()
		if sln != nil {
			sln.Close()
		}
	}
	db, last, since, away, err := openStore(&cfg)
	if err != nil {
		closeListeners()
		return nil, err
	}
	flushRec, err := openFlushFile(&cfg)
	if err != nil {
		db.Close()
		closeListeners()
		return nil, err
	}
	// Request ids survive a restart in <StorePath>.ids; without the file
	// (it cannot be created: a read-only or full disk) they are kept in
	// memory, as a warning says.
	ids, fresh, idsErr := openDedupFile(cfg.StorePath+".ids", dedupSize, dedupMaxSize, numStripes)
	s := &Server{
		cfg:     cfg,
		log:     cfg.Log,
		clk:     cfg.Clock,
		db:      db,
		access:  newAccessTable(),
		dedup:   newDedupTable(),
		start:   time.Now(),
		ln:      ln,
		peers:   make(map[ring.Addr]*rpc.Client),
		streams: make(map[ring.Addr]*rpc.Client),
	}
	s.lastCurrent.Store(last.UnixNano())
	s.prevSince.Store(since)
	if active, ok := readActiveWhenCurrent(cfg.StorePath); ok {
		s.activeWhenCurrent.Store(&active)
	}
	if away {
		s.setAway()
	}
	// The incarnation tells the managers this is a new process: a restart
	// within the same second must differ too, so it is random, not a clock.
	s.inc = randUint64()
	s.kaNow = make(chan struct{}, 1)
	s.writeFn = s.handleWrite
	s.setDirectFn = func(req *rpc.Request, _ *rpc.Batch) { s.handleSetDirect(req) }
	s.replicateFn = func(req *rpc.Request, _ *rpc.Batch) { s.handleReplicate(req) }
	s.buckets.Store(db.Stats().Buckets)
	s.dedup.infof, s.dedup.warnf = s.log.Infof, s.log.Warnf
	if idsErr != nil {
		s.log.Warnf("%v; request ids of incr, decr, append, prepend and delete are kept in memory only", idsErr)
	} else {
		s.dedup.attach(ids)
		if n := s.resolvePendingIDs(); n > 0 {
			s.log.Infof("request ids: %d writes stored just before the last run ended noted", n)
		}
		if !fresh {
			s.log.Infof("request ids: %d recent writes remembered from the last run", s.dedup.len())
		}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewRegistry()
	}
	s.registerMetrics(cfg.Metrics)
	s.restoreFlush(flushRec) // the flush point is in force before the server serves
	s.ctx, s.cancel = context.WithCancel(context.Background())
	empty := ring.New(nil, 0)
	s.whs.Store(empty)
	s.rhs.Store(empty)
	s.rpcSrv = &rpc.Server{
		Handler:  rpc.HandlerFunc(s.serveRPC),
		OnHello:  s.onHello,
		OnClose:  s.repairAfter,
		Logf:     s.log.Func(logging.Warn),
		MaxConns: cfg.MaxRPCConns,
	}
	s.local = newPipeListener(ln.Addr())
	s.loops.Add(2)
	for _, l := range []net.Listener{ln, s.local} {
		go func() {
			defer s.loops.Done()
			if err := s.rpcSrv.Serve(l); err != nil && !s.closed.Load() {
				s.log.Errorf("rpc server stopped: %v", err)
			}
		}()
	}
	if sln != nil {
		s.serveStream(sln)
	}
	s.resumeFlush()
	for _, m := range cfg.Managers {
		s.mgrs = append(s.mgrs, s.dialManager(m))
	}
	s.lastTick.Store(time.Now().UnixNano())
	s.loops.Add(3)
	go s.keepAliveLoop()
	go s.maintenanceLoop()
	go s.pauseWatch()
	return s, nil
}

// randUint64 returns a random non-zero uint64.
func randUint64() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err == nil {
			if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
				return v
			}
		}
	}
}

// openStore opens the server's store and reports when it was last marked
// current (see markCurrent: the time in <StorePath>.current, or else the
// file's modification time before the open, which writes the header), and
// whether that is longer ago than the garbage time (away). While this
// server was away, the other servers may have purged tombstones of keys
// deleted meanwhile, and its old copies of those keys would bring them
// back: an away store drops those old records when the attach's replace
// copy begins (purgeStale). It used to be emptied here, which after a
// whole-cluster outage longer than the garbage time emptied every store.
// The modification time alone also moves when the store is opened or
// compacted while the server is not current, so a second restart after a
// long absence looked current.
//
// since is when the store's last stint as current began (0 if unknown):
// a restart shorter than the garbage time continues it (markCurrent).
func openStore(cfg *Config) (db *store.DB, last time.Time, since int64, away bool, err error) {
	last = time.Now()
	fi, statErr := os.Stat(cfg.StorePath)
	wrote := false
	if statErr == nil && fi.Mode().IsRegular() {
		last = fi.ModTime()
		if t, sc, ok := readCurrentFile(cfg.StorePath); ok {
			last, since = t, sc
		} else {
			// Keep the time the open is about to move (a store from
			// before the file, or one never marked current).
			wrote = os.WriteFile(cfg.StorePath+currentSuffix, appendCurrentFile(nil, last, 0, nil), 0o644) == nil
		}
	}
	db, err = store.Open(cfg.StorePath, &cfg.Store)
	if err != nil {
		if wrote {
			// Not a store after all (garbage, damaged): leave nothing
			// next to it that the operator did not have before.
			os.Remove(cfg.StorePath + currentSuffix)
		}
		return nil, last, 0, false, err
	}
	if statErr != nil {
		return db, last, 0, false, nil
	}
	age := time.Since(last)
	if age <= cfg.GarbageMax {
		// Also for an empty store: its stint goes on, and a long-away
		// server's purge counts on it (authorities). An empty store used
		// to start a new one here, and after a rolling restart of servers
		// whose every key had been deleted and purged, a long-away server
		// found no one current since it left and kept its old copies of
		// those keys: all 100 came back.
		return db, last, since, false, nil
	}
	if db.Len() == 0 {
		return db, last, 0, false, nil // nothing old to bring back
	}
	cfg.Log.Warnf("store %s was last current %v ago, longer than the garbage time %v: discarding its %d records when it is attached, if other servers served meanwhile, so that deleted keys cannot come back",
		cfg.StorePath, age.Round(time.Second), cfg.GarbageMax, db.Len())
	return db, last, 0, true, nil
}

// maybeGrow rebuilds the store online with twice the slots once it is 3/4
// full: the bucket number is fixed per file, and a full table refuses
// writes. kumo-storetool create/optimize can still size it up front.
func (s *Server) maybeGrow() {
	if n := uint64(s.db.Len()); n*4 < s.buckets.Load()*3 || s.closed.Load() {
		return
	}
	if !s.growing.CompareAndSwap(false, true) {
		return
	}
	s.repl.Add(1)
	go func() {
		defer s.repl.Done()
		defer s.growing.Store(false)
		n := uint64(s.db.Len()) * 2
		s.log.Infof("store is %d%% full: growing it online to %d slots", uint64(s.db.Len())*100/max(s.buckets.Load(), 1), n)
		if err := s.db.Optimize(n); err != nil {
			s.log.Errorf("growing the store: %v", err)
			return
		}
		s.buckets.Store(s.db.Stats().Buckets)
	}()
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server: no new requests, in-flight replication finishes or
// fails, the store is synced and closed.
func (s *Server) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.cancel()
	s.rpcSrv.Close()
	if s.streamSrv != nil {
		s.streamSrv.Close()
	}
	for _, m := range s.mgrs {
		m.Close()
	}
	s.flushMu.Lock()
	for _, t := range s.flushTimers {
		t.Stop()
	}
	s.flushMu.Unlock()
	s.loops.Wait()
	s.repl.Wait()
	s.peersMu.Lock()
	for _, p := range s.peers {
		p.Close()
	}
	s.peers = nil
	s.peersMu.Unlock()
	s.streamMu.Lock()
	for _, p := range s.streams {
		p.Close()
	}
	s.streams = nil
	s.streamMu.Unlock()
	s.closeDedup()
	return s.db.Close()
}

// resolvePendingIDs settles the pending slots of the request-id file at
// start (see dedupFile): a write whose key holds exactly the version it
// names was stored before the last run ended, and its id joins the table;
// any other was not. It returns how many joined. It holds the table's
// lock while reading the store (which takes no locks to read).
func (s *Server) resolvePendingIDs() int {
	d := s.dedup
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.file
	if f == nil {
		return 0
	}
	n := 0
	for j := range f.pending {
		sl, dbkey, ok := f.readPending(j)
		if !ok {
			continue
		}
		if _, known := d.m[sl.id]; !known {
			if rec, _, err := s.db.Get(dbkey, nil); err == nil && rec.Clock == sl.e.clock {
				d.putLocked(sl.id, sl.e)
				n++
			}
		}
		f.clearPending(j)
	}
	return n
}

// closeDedup closes the request-id file, if the dedup table has one.
func (s *Server) closeDedup() {
	if f := s.dedup.detach(); f != nil {
		if err := f.close(); err != nil {
			s.log.Warnf("closing the request-id file: %v", err)
		}
	}
}

func (s *Server) onHello(c *rpc.Conn, h rpc.Hello) *rpc.Hello {
	if a, err := ring.AddrFromDump(h.Addr); err == nil {
		s.clk.Now() // the hello carries no clock; nothing to merge
		s.log.Debugf("peer connected: %s role %d", a, h.Role)
	}
	return &rpc.Hello{Addr: s.cfg.Self.Dump(), Role: wire.RoleServer}
}

// peerProbe finds a peer cut off from us within about two seconds instead
// of each replication waiting out its timeout: servers answer SrvKeepAlive
// at once.
var peerProbe = &rpc.Probe{Method: wire.SrvKeepAlive, Args: emptyParams, After: time.Second}

// peer returns the RPC client for another server, dialing it on first use.
func (s *Server) peer(a ring.Addr) *rpc.Client {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	if s.peers == nil {
		return nil
	}
	c := s.peers[a]
	if c == nil {
		c = rpc.Dial(a.String(), rpc.Options{
			Logf:        s.log.Func(logging.Debug),
			Hello:       &rpc.Hello{Addr: s.cfg.Self.Dump(), Role: wire.RoleServer},
			CallTimeout: s.cfg.CallTimeout,
			CloseSilent: true,
			Probe:       peerProbe,
			Handler:     rpc.HandlerFunc(s.serveRPC),
		})
		s.peers[a] = c
	}
	return c
}

// maintenanceTick is how often maintenanceLoop runs.
func (s *Server) maintenanceTick() time.Duration {
	return min(5*time.Second, max(s.cfg.GarbageMax/8, time.Second))
}

// maintenanceLoop marks the store current (markCurrent) every few seconds,
// compacts it when dead space dominates, and at
// least every garbage time so that old tombstones and expired items are
// purged.
func (s *Server) maintenanceLoop() {
	defer s.loops.Done()
	t := time.NewTicker(s.maintenanceTick())
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.checkAway()
		s.markCurrent()
		st := s.db.Stats()
		if (st.DeadBytes > 64<<20 && st.DeadBytes > st.LiveBytes) || time.Since(last) > s.cfg.GarbageMax {
			last = time.Now()
			s.log.Infof("compacting store: %d dead bytes, %d live", st.DeadBytes, st.LiveBytes)
			if err := s.db.Compact(store.CompactOptions{Now: time.Now(), TombstoneAge: s.cfg.GarbageMax}); err != nil {
				s.log.Errorf("compaction failed: %v", err)
				if errors.Is(err, store.ErrCorrupt) {
					s.noteCorrupt()
				}
			}
		}
	}
}
