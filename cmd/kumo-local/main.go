// Command kumo-local starts a whole kumo cluster on this machine — one
// kumo-manager, N kumo-servers and a kumo-gateway, as child processes on
// 127.0.0.1 — attaches the servers, waits until the gateway answers, and
// prints where everything is. Ctrl-C (or SIGTERM) stops everything.
//
//	kumo-local [-n SERVERS] [-t PORT] [-data DIR] [-v]
//
// The daemons are the kumo-* binaries next to kumo-local's own executable
// (as `make build` leaves them in bin/). Their databases and logs go to the
// data folder (default ./kumo-data). The manager and servers use the kumofs
// ports 19700, 19801…, 19901… when those are free, and kernel-chosen ports
// otherwise.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"

	"kumofs/internal/cli"
	"kumofs/internal/localcluster"
)

// required are the binaries kumo-local runs.
var required = []string{"kumo-manager", "kumo-server", "kumo-gateway", "kumoctl"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the parsed command line.
type config struct {
	servers  int
	port     int
	data     string
	verbose  bool
	binDir   string
	managers int
	embedded bool
}

// parse parses the command line; code >= 0 means exit with it.
func parse(args []string, stdout, stderr io.Writer) (cfg config, code int) {
	fs := cli.New("kumo-local", "usage: kumo-local [-n SERVERS] [-t PORT] [-data DIR] [-E] [-v]\n"+
		"Starts a manager, servers and a gateway on 127.0.0.1; Ctrl-C stops everything.")
	fs.Stdout, fs.Stderr = stdout, stderr
	code = -1
	fs.ExitFunc = func(c int) { code = c }
	fs.Int(&cfg.servers, "-n", "--servers", 3, "number of kumo-servers")
	fs.Int(&cfg.port, "-t", "--memproto-text", 11211, "memcached text port of the gateway")
	fs.String(&cfg.data, "-data", "--data", "./kumo-data", "folder for databases and logs")
	fs.Int(&cfg.managers, "-M", "--managers", 1, "number of kumo-managers (1, or 2 for a pair)")
	fs.String(&cfg.binDir, "-B", "--bin-dir", "", "folder of the kumo binaries (default: next to kumo-local)")
	fs.Bool(&cfg.verbose, "-v", "--verbose", "run every daemon with -v")
	fs.Bool(&cfg.embedded, "-E", "--embedded", "serve memcached from the first server (kumo-server -t) instead of a kumo-gateway")
	err := fs.Parse(args)
	switch {
	case err != nil:
	case cfg.servers < 1 || cfg.servers > 100:
		err = fmt.Errorf("argument error `-n': 1 to 100 servers: %d", cfg.servers)
	case cfg.port < 1 || cfg.port > 65535:
		err = fmt.Errorf("argument error `-t': port 1 to 65535: %d", cfg.port)
	case cfg.managers != 1 && cfg.managers != 2:
		err = fmt.Errorf("argument error `-M': 1 or 2 managers: %d", cfg.managers)
	}
	fs.Exit(err)
	return cfg, code
}

// binDir returns the folder of kumo-local's own executable.
func binDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", err
	}
	return filepath.Dir(exe), nil
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, code := parse(args, stdout, stderr)
	if code >= 0 {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	if cfg.binDir == "" {
		d, err := binDir()
		if err != nil {
			return fail(fmt.Errorf("cannot find my own executable: %w", err))
		}
		cfg.binDir = d
	}
	for _, b := range required {
		if _, err := os.Stat(filepath.Join(cfg.binDir, b)); err != nil {
			return fail(fmt.Errorf("%s not found next to kumo-local in %s (run `make build`)", b, cfg.binDir))
		}
	}
	if !localcluster.PortFree(cfg.port) {
		return fail(fmt.Errorf("port 127.0.0.1:%d is in use; choose another with -t", cfg.port))
	}
	data, err := filepath.Abs(cfg.data)
	if err != nil {
		return fail(err)
	}

	// Signals first, so that Ctrl-C during startup stops what has started.
	// The children run in their own process groups: a terminal's Ctrl-C
	// reaches only kumo-local, which stops them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	fmt.Fprintf(stdout, "kumo-local: starting %d server(s) in %s ...\n", cfg.servers, data)
	c, err := localcluster.Start(localcluster.Options{
		BinDir:             cfg.binDir,
		Dir:                data,
		Servers:            cfg.servers,
		Managers:           cfg.managers,
		GatewayTextPort:    cfg.port,
		PreferDefaultPorts: true,
		EmbeddedGateway:    cfg.embedded,
		Verbose:            cfg.verbose,
		Context:            ctx,
	})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stdout, "kumo-local: interrupted; everything stopped")
			return 0
		}
		return fail(err)
	}
	defer c.Stop()
	printCluster(stdout, c)

	// Report children that die on their own while we wait.
	died := make(chan *localcluster.Proc, 16)
	for _, p := range c.Procs() {
		go func() {
			select {
			case <-p.Done():
				select {
				case died <- p:
				case <-ctx.Done():
				}
			case <-ctx.Done():
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "kumo-local: stopping ...")
			c.Stop()
			fmt.Fprintln(stdout, "kumo-local: everything stopped")
			return 0
		case p := <-died:
			fmt.Fprintf(stderr, "kumo-local: %s exited (%v); see %s\n", p.Name, exitText(p.Wait()), p.LogPath)
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return fmt.Sprintf("status %d", ee.ExitCode())
	}
	return err.Error()
}

// printCluster prints the memcached address and every process.
func printCluster(w io.Writer, c *localcluster.Cluster) {
	fmt.Fprintf(w, "\nmemcached: %s\n\n", c.Gateway())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  process\taddress\tpid\tlog")
	for _, p := range c.Procs() {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", p.Name, p.Addr, p.Pid(), p.LogPath)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nadmin:  %s/kumoctl %s status\n", c.BinDir(), c.Manager(0))
	fmt.Fprintf(w, "        %s/kumostat -m %s items\n", c.BinDir(), c.Manager(0))
	fmt.Fprintln(w, "\nCtrl-C stops everything.")
}
