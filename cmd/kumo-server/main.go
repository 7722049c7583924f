// Command kumo-server stores a share of the cluster's data and coordinates
// the memcached commands for the keys it owns first.
//
//	kumo-server -l ADDR[:19800] -m MGR[:19700] [-p MGR2] -s PATH [-L 19900] [-f DIR] [-t [ADDR:]PORT] ...
//
// With -t (or -b) it also serves the memcached protocol itself, as an
// embedded kumo-gateway that reaches this server in-process and the others
// over the network.
package main

import (
	"errors"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"kumofs/internal/cli"
	"kumofs/internal/daemon"
	"kumofs/internal/memreturn"
	"kumofs/internal/metrics"
	"kumofs/kumo/gateway"
	"kumofs/kumo/server"
	"kumofs/proto/rpc"
	"kumofs/ring"
	"kumofs/store"
)

const usage = "usage: kumo-server -l <addr[:port=19800]> -L <port=19900> -m <addr[:port=19700]> -p <addr[:port=19700]> -s <path.kch>"

func main() {
	var (
		c                      daemon.Common
		listen, m1, m2, path   string
		tmp, syncPolicy        string
		text, bin              string
		noDirect               bool
		streamPort, maxConns   int
		setRetry, delRetry     int
		memLimit, gcMemLimit   int
		gcMin, gcMax, replWait time.Duration
	)
	fs := cli.New("kumo-server", usage)
	addr := func(def int) func(string) error {
		return func(s string) error { _, err := ring.ParseAddr(s, def); return err }
	}
	fs.Address(&listen, "-l", "--listen", "", "listen address (advertised to the other nodes)", addr(19800), cli.Required)
	fs.Int(&streamPort, "-L", "--stream-listen", 19900, "listen port of the replace stream", cli.Port)
	fs.String(&tmp, "-f", "--offer-tmp", "/tmp", "path to temporary directory for replacing")
	fs.String(&path, "-s", "--store", "", "path to the database", cli.Required)
	fs.Address(&m1, "-m", "--manager1", "", "address of manager 1", addr(19700), cli.Required)
	fs.Address(&m2, "-p", "--manager2", "", "address of manager 2", cli.OrEmpty(addr(19700)))
	fs.Int(&setRetry, "-S", "--replicate-set-retry", 20, "replicate set retry limit", cli.NonNegative)
	fs.Int(&delRetry, "-D", "--replicate-delete-retry", 20, "replicate delete retry limit", cli.NonNegative)
	fs.Int(&memLimit, "-M", "--replace-memory-limit", 0, "replace memory limit in MB (accepted; kumo bounds memory itself)")
	fs.Seconds(&gcMin, "-gN", "--garbage-min-time", 60*time.Second, "minimum time to keep deleted keys")
	fs.Seconds(&gcMax, "-gX", "--garbage-max-time", time.Hour, "maximum time to keep deleted keys")
	fs.Int(&gcMemLimit, "-gS", "--garbage-mem-limit", 2048, "garbage memory limit in KB (accepted; tombstones live on disk)")
	fs.String(&syncPolicy, "", "--sync", "interval", "store sync policy: none, interval (1 s) or always")
	fs.Seconds(&replWait, "", "--replicate-timeout", 5*time.Second, "how long a write waits for an unreachable replica")
	fs.Address(&text, "-t", "--memproto-text", "", "also serve memcached text protocol here (embedded gateway)", cli.Listenable(11411))
	fs.Address(&bin, "-b", "--memproto-binary", "", "also serve memcached binary protocol here (embedded gateway)", cli.Listenable(11511))
	fs.Bool(&noDirect, "", "--no-direct-sets", "embedded gateway: send plain sets to each key's coordinator instead of to every owner at once")
	fs.Int(&maxConns, "", "--max-conns", 4096, "embedded gateway: maximum memcached client connections; more are refused with an error (0 = unlimited)", cli.NonNegative)
	c.Register(fs, 8*time.Second, true)
	c.RegisterClock(fs)
	fs.MustParse(os.Args[1:])

	self, _ := ring.ParseAddr(listen, 19800)
	var mgrs []string
	for _, m := range []string{m1, m2} {
		if m == "" {
			continue
		}
		a, _ := ring.ParseAddr(m, 19700)
		mgrs = append(mgrs, a.String())
	}
	if len(mgrs) == 2 && mgrs[0] == mgrs[1] {
		fs.Fail("-m and -p must be different")
	}
	sp, err := store.ParseSyncPolicy(syncPolicy)
	if err != nil {
		fs.Fail("%v", err)
	}
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i] // kumofs's Tokyo Cabinet tuning suffix: not ours
	}
	log, err := c.Setup("server")
	if err != nil {
		daemon.Fatal(os.Stderr, "kumo-server", err)
	}
	clk, err := c.NewClock(log)
	if err != nil {
		daemon.Fatal(os.Stderr, "kumo-server", err)
	}
	// The RPC port (gateways, peers, managers) gets the descriptors an
	// embedded gateway's clients do not (see below).
	rpcShare := 1.0
	if text != "" || bin != "" {
		rpcShare = 0.5
	}
	rpcConns, note := daemon.FitConns("RPC connections", rpc.DefaultMaxConns, rpcShare)
	if note != "" {
		log.Warnf("%s", note)
	}
	reg := metrics.NewRegistry()
	metrics.RegisterProcess(reg, "server", cli.Version, time.Now())
	srv, err := server.New(server.Config{
		Self:        self,
		StreamPort:  streamPort,
		Managers:    mgrs,
		StorePath:   path,
		Store:       store.Options{Sync: sp},
		TmpDir:      tmp,
		ReplTimeout: replWait,
		GarbageMax:  gcMax,
		MaxRPCConns: rpcConns,
		Log:         log,
		Clock:       clk,
		Metrics:     reg,
	})
	if err != nil {
		what := "cannot start"
		if errors.Is(err, store.ErrLocked) {
			what = "cannot start: " + path + " is in use by another process"
		}
		c.Fail(log, "kumo-server", what, err)
	}
	var gw *gateway.Gateway
	var gwReg *metrics.Registry
	var extra map[string]http.Handler
	if text != "" || bin != "" {
		// The gateway's metrics share names with the server's (kumo_requests_total):
		// they get a registry of their own, served on /metrics/gateway.
		gwReg = metrics.NewRegistry()
		extra = map[string]http.Handler{"/metrics/gateway": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			gwReg.WriteText(w)
		})}
		textAddr, _ := cli.ListenAddr(text, 11411)
		binAddr, _ := cli.ListenAddr(bin, 11511)
		// Half the descriptors for memcached clients: the RPC port
		// (gateways, peers) needs the rest.
		if fit, note := daemon.FitConns("--max-conns", maxConns, 0.5); note != "" {
			log.Warnf("%s", note)
			maxConns = fit
		}
		gw, err = gateway.New(gateway.Config{
			Managers:       mgrs,
			Text:           textAddr,
			Binary:         binAddr,
			Log:            log.With("gateway"),
			Metrics:        gwReg,
			Local:          self,
			DialLocal:      srv.DialLocal,
			ReadLocal:      srv.ReadLocal,
			WriteLocal:     srv.WriteLocal,
			DeleteLocal:    srv.DeleteLocal,
			Clock:          clk, // one clock per process
			NoDirectSets:   noDirect,
			SetDirectLocal: srv.SetDirectLocal,
			// kumo-gateway's default: without a cap, clients could take
			// every descriptor and lock the cluster out of the server.
			MaxConns: maxConns,
			// Local reads and sets are answered in place, on the loop
			// that read them. Two loops per P: a reply's write wakes its
			// client, and the kernel often preempts the loop's thread
			// right there, holding up that loop's other connections
			// until it runs again; with a second loop per P the P has
			// other connections to serve meanwhile. 1 server, 90% gets,
			// 2 Ps, side by side: 2 loops 101.0k, 3 loops 107.6k, 4 loops
			// 109.0k ops/s (8 loops: 101.2k against 99.9k); sets,
			// pipelined gets and 3 servers unchanged (BENCHMARKS.md,
			// session 7).
			EventLoops: 2 * runtime.GOMAXPROCS(0),
		})
		if err != nil {
			srv.Close()
			c.Fail(log, "kumo-server", "cannot start the embedded gateway", err)
		}
	}
	stop := func() error {
		if gw != nil {
			gw.Close() // no more client requests, then the store
		}
		return srv.Close()
	}
	stopMem := memreturn.Start() // a quiet daemon gives back what a burst left
	stopProcs := c.StartProcs(log, func() uint64 {
		n := reg.CounterSum(metrics.RequestsTotal, metrics.DirectSetsTotal)
		if gwReg != nil {
			n += gwReg.CounterSum(metrics.RequestsTotal)
		}
		return n
	})
	stopHTTP, err := c.StartHTTP(reg, extra, srv.Health, log)
	if err != nil {
		stop()
		daemon.Fatal(os.Stderr, "kumo-server", err)
	}
	log.Infof("kumo-server %s listening on %s, store %s", cli.Version, self, path)
	if gw != nil {
		log.Infof("embedded gateway serving memcached on %v", gw.Addrs())
	}
	daemon.Wait(log, func() error { stopHTTP(); stopProcs(); stopMem(); return stop() })
}
