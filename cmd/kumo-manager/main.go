// Command kumo-manager tracks the cluster's servers, detects failures,
// drives rebalancing and answers kumoctl.
//
//	kumo-manager -l ADDR[:19700] [-p PARTNER[:19700]] [-a] [-Rs 4]
package main

import (
	"context"
	"net/http"
	"os"
	"time"

	"kumofs/internal/cli"
	"kumofs/internal/daemon"
	"kumofs/internal/memreturn"
	"kumofs/internal/metrics"
	"kumofs/internal/statuspage"
	"kumofs/kumo/manager"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

const usage = "usage: kumo-manager -l <addr[:port=19700]> -p <addr[:port=19700]>"

func main() {
	var (
		c                   daemon.Common
		listen, partner     string
		auto                bool
		delay, lost, silent time.Duration
		vnodes              int
	)
	fs := cli.New("kumo-manager", usage)
	addr := func(s string) error { _, err := ring.ParseAddr(s, 19700); return err }
	fs.Address(&listen, "-l", "--listen", "", "listen address", addr, cli.Required)
	fs.Address(&partner, "-p", "--partner", "", "address of the partner manager", cli.OrEmpty(addr))
	fs.Bool(&auto, "-a", "--auto-replace", "enable auto replacing")
	fs.Seconds(&delay, "-Rs", "--replace-delay", 4*time.Second, "delay time of auto replacing in seconds")
	fs.Seconds(&lost, "", "--lost-timeout", 1500*time.Millisecond, "how long a disconnected server may stay away before it is marked fault")
	fs.Seconds(&silent, "", "--keepalive-timeout", 3*time.Second, "how long a connected server may stay silent before it is marked fault")
	fs.Int(&vnodes, "", "--virtual-nodes", ring.DefaultVirtualNodes, "virtual nodes per server (128 = kumofs placement; 2048 balances within 10% at 24 servers; changing it rebalances at the next attach or replace)")
	c.Register(fs, 2*time.Second, true)
	c.RegisterClock(fs)
	fs.MustParse(os.Args[1:])

	if err := ring.CheckVirtualNodes(vnodes); err != nil {
		fs.Fail("--virtual-nodes: %v", err)
	}
	self, _ := ring.ParseAddr(listen, 19700)
	if partner != "" {
		p, _ := ring.ParseAddr(partner, 19700)
		if p == self {
			fs.Fail("-l and -p must be different")
		}
		partner = p.String()
	}
	log, err := c.Setup("manager")
	if err != nil {
		daemon.Fatal(os.Stderr, "kumo-manager", err)
	}
	clk, err := c.NewClock(log)
	if err != nil {
		daemon.Fatal(os.Stderr, "kumo-manager", err)
	}
	rpcConns, note := daemon.FitConns("RPC connections", rpc.DefaultMaxConns, 1)
	if note != "" {
		log.Warnf("%s", note)
	}
	reg := metrics.NewRegistry()
	metrics.RegisterProcess(reg, "manager", cli.Version, time.Now())
	m, err := manager.New(manager.Config{
		Self:             self,
		Partner:          partner,
		AutoReplace:      auto,
		ReplaceDelay:     delay,
		LostTimeout:      lost,
		KeepAliveTimeout: silent,
		VirtualNodes:     vnodes,
		MaxRPCConns:      rpcConns,
		Log:              log,
		Clock:            clk,
		Metrics:          reg,
	})
	if err != nil {
		c.Fail(log, "kumo-manager", "cannot start", err)
	}
	// The status page: the manager's view plus each server's counters,
	// asked for on every page load.
	poller := statuspage.NewPoller(time.Second)
	page := statuspage.Handler(func() statuspage.Status {
		st := m.Status()
		statuspage.Sort(st.Servers)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		poller.Fill(ctx, st.Servers, st.Generated)
		return st
	})
	stopMem := memreturn.Start() // a quiet daemon gives back what a burst left
	stopProcs := c.StartProcs(log, nil)
	stopHTTP, err := c.StartHTTP(reg, map[string]http.Handler{"/{$}": page}, nil, log)
	if err != nil {
		m.Close()
		daemon.Fatal(os.Stderr, "kumo-manager", err)
	}
	log.Infof("kumo-manager %s listening on %s", cli.Version, self)
	daemon.Wait(log, func() error { stopHTTP(); stopProcs(); stopMem(); poller.Close(); return m.Close() })
}
