// Command kumo-gateway serves the memcached protocols and routes every
// request to the servers that own the key.
//
//	kumo-gateway -m MGR[:19700] [-p MGR2] -t [ADDR:]PORT [-b [ADDR:]PORT] [-k PREFIX]
package main

import (
	"fmt"
	"os"
	"time"

	"kumofs/internal/cli"
	"kumofs/internal/daemon"
	"kumofs/internal/memreturn"
	"kumofs/internal/metrics"
	"kumofs/kumo/gateway"
	"kumofs/ring"
)

const usage = "usage: kumo-gateway -m <addr[:port=19700]> -p <addr[:port=19700]> -t <[addr:]port=11411> -b <[addr:]port=11511>"

func main() {
	var (
		c                          daemon.Common
		m1, m2, text, bin, cloudy  string
		prefix, localCache         string
		saveFlag, saveExp          bool
		asyncSet, asyncDel, noLoop bool
		noDirect                   bool
		getRetry, setRetry, delRty int
		renew, maxItem, maxConns   int
		retryTimeout               time.Duration
	)
	fs := cli.New("kumo-gateway", usage)
	addr := func(s string) error { _, err := ring.ParseAddr(s, 19700); return err }
	fs.Address(&m1, "-m", "--manager1", "", "address of manager 1", addr, cli.Required)
	fs.Address(&m2, "-p", "--manager2", "", "address of manager 2", cli.OrEmpty(addr))
	fs.Address(&text, "-t", "--memproto-text", "", "memcached text protocol listen address", cli.Listenable(11411))
	fs.Address(&bin, "-b", "--memproto-binary", "", "memcached binary protocol listen address", cli.Listenable(11511))
	fs.Address(&cloudy, "-c", "--cloudy", "", "asynchronous memcached binary protocol (not supported)", cli.Listenable(11611))
	fs.String(&localCache, "-lc", "--local-cache", "", "local cache (accepted for compatibility; not used)")
	fs.Bool(&saveFlag, "-F", "--memproto-save-flag", "save flags (always on in kumo)")
	fs.Bool(&saveExp, "-E", "--memproto-save-expire", "save expiration time (always on in kumo)")
	fs.Bool(&asyncSet, "-As", "--async-replicate-set", "(accepted for compatibility)")
	fs.Bool(&asyncDel, "-Ad", "--async-replicate-delete", "(accepted for compatibility)")
	fs.Int(&getRetry, "-G", "--get-retry", 5, "get retry limit", cli.NonNegative)
	fs.Int(&setRetry, "-S", "--set-retry", 20, "set retry limit", cli.NonNegative)
	fs.Int(&delRty, "-D", "--delete-retry", 20, "delete retry limit", cli.NonNegative)
	fs.Int(&renew, "-rn", "--renew-threshold", 4, "hash space renew threshold")
	fs.String(&prefix, "-k", "--key-prefix", "", "add prefix to every key")
	fs.Bytes(&maxItem, "-I", "--max-item-size", 1<<20, "maximum item size in bytes (k, m, g suffixes as memcached's -I)")
	fs.Int(&maxConns, "", "--max-conns", 4096, "maximum client connections; more are refused with an error (0 = unlimited)", cli.NonNegative)
	fs.Bool(&noLoop, "", "--no-event-loop", "serve each client connection on a goroutine of its own (no epoll event loop)")
	fs.Bool(&noDirect, "", "--no-direct-sets", "send plain sets to each key's coordinator instead of to every owner at once")
	fs.Seconds(&retryTimeout, "", "--retry-timeout", 10*time.Second, "how long a request is retried before SERVER_ERROR")
	c.Register(fs, 2*time.Second, false)
	c.RegisterClock(fs)
	fs.MustParse(os.Args[1:])

	if text == "" && bin == "" && cloudy == "" {
		fs.Fail("-t or -b is required")
	}
	if cloudy != "" {
		fs.Fail("-c (cloudy) is not supported by kumo; use -b")
	}
	if err := checkItemSize(maxItem); err != nil {
		fs.Fail("%v", err)
	}
	textAddr, _ := cli.ListenAddr(text, 11411)
	binAddr, _ := cli.ListenAddr(bin, 11511)
	var mgrs []string
	for _, m := range []string{m1, m2} {
		if m != "" {
			a, _ := ring.ParseAddr(m, 19700)
			mgrs = append(mgrs, a.String())
		}
	}
	log, err := c.Setup("gateway")
	if err != nil {
		daemon.Fatal(os.Stderr, "kumo-gateway", err)
	}
	if fit, note := daemon.FitConns("--max-conns", maxConns, 1); note != "" {
		log.Warnf("%s", note)
		maxConns = fit
	}
	clk, err := c.NewClock(log)
	if err != nil {
		c.Fail(log, "kumo-gateway", "cannot start", err)
	}
	reg := metrics.NewRegistry()
	metrics.RegisterProcess(reg, "gateway", cli.Version, time.Now())
	g, err := gateway.New(gateway.Config{
		Managers:     mgrs,
		Text:         textAddr,
		Binary:       binAddr,
		KeyPrefix:    []byte(prefix),
		RetryTimeout: retryTimeout,
		MaxItemSize:  maxItem,
		MaxConns:     maxConns,
		NoEventLoop:  noLoop,
		NoDirectSets: noDirect,
		Log:          log,
		Metrics:      reg,
		Clock:        clk,
	})
	if err != nil {
		c.Fail(log, "kumo-gateway", "cannot start", err)
	}
	stopMem := memreturn.Start() // a quiet daemon gives back what a burst left
	stopProcs := c.StartProcs(log, func() uint64 { return reg.CounterSum(metrics.RequestsTotal) })
	stopHTTP, err := c.StartHTTP(reg, nil, g.Health, log)
	if err != nil {
		g.Close()
		daemon.Fatal(os.Stderr, "kumo-gateway", err)
	}
	log.Infof("kumo-gateway %s serving memcached on %v", cli.Version, g.Addrs())
	daemon.Wait(log, func() error { stopHTTP(); stopProcs(); stopMem(); return g.Close() })
}

// checkItemSize checks -I: from 1024 bytes (memcached's least) to
// gateway.MaxItemLimit, the largest value a server's RPC frames carry
// (memcached allows up to 1g; kumo-servers close a connection whose frame
// passes 64 MiB, and a larger set failed after seconds with SERVER_ERROR).
func checkItemSize(n int) error {
	if n < 1024 || n > gateway.MaxItemLimit {
		return fmt.Errorf("-I: the item size must be between 1024 bytes and %dm (the largest value the servers' RPC frames carry): %d",
			gateway.MaxItemLimit>>20, n)
	}
	return nil
}
