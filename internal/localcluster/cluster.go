package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Default deadlines of Start.
const (
	// ReadyTimeout bounds each wait of Start: for the manager to see every
	// server, and for the gateway to answer a set and a get.
	ReadyTimeout = 20 * time.Second
	// ToolTimeout bounds one run of kumoctl or kumostat.
	ToolTimeout = 15 * time.Second
)

// The kumofs default ports, which Options.PreferDefaultPorts tries first.
const (
	DefaultManagerPort = 19700
	DefaultServerPort  = 19800
	DefaultStreamPort  = 19900
)

// Options describe a cluster. The zero value (plus a BinDir) is one manager,
// three servers and a gateway on kernel-chosen ports.
type Options struct {
	BinDir   string // holds kumo-manager, kumo-server, kumo-gateway, kumoctl, kumostat
	Dir      string // data and log folder (created); empty: a new temporary folder
	Servers  int    // number of servers; 0 means 3
	Managers int    // 1, or 2 for a pair (-p); 0 means 1

	// Gateway listen ports; 0 means a kernel-chosen port for the text port
	// and no binary listener. Set BinaryPort to -1 for a kernel-chosen one.
	GatewayTextPort   int
	GatewayBinaryPort int

	// PreferDefaultPorts makes managers try 19700+i, server i (1-based) try
	// 19800+i and stream port 19900+i when they are free.
	PreferDefaultPorts bool

	ExtraManagerArgs []string
	ExtraServerArgs  []string
	ExtraGatewayArgs []string
	Verbose          bool // pass -v to every daemon

	// Context, if set, cancels Start: its waits give up and everything
	// started is stopped.
	Context context.Context

	// NoAttach skips the kumoctl attach and the gateway probe: Start returns
	// once every server has reached the manager.
	NoAttach bool

	// EmbeddedGateway runs no kumo-gateway process: the first server
	// serves the memcached protocol itself (kumo-server -t), and Gateway
	// returns its address. GatewayProc is nil then.
	EmbeddedGateway bool
}

// Cluster is a running local cluster. Its methods are safe for concurrent
// use. Lock order: Cluster.mu is never held while a Proc's lock is taken
// (or the other way round); each is released before the next is acquired.
type Cluster struct {
	opts    Options
	dir     string
	tempDir bool // dir was created by Start and is removed by Stop

	managers []*Proc
	gateway  *Proc
	mgrAddrs []string
	gwText   string
	gwBinary string

	mu      sync.Mutex   // protects servers, taken, stopped
	servers []*Proc      // in start order; Server(i) is servers[i]
	taken   map[int]bool // ports handed out
	stopped bool
}

// StartError is returned by Start; its message ends with the tail of every
// log, which usually says what went wrong.
type StartError struct {
	Err  error  // the cause
	Logs string // tails of the logs
}

func (e *StartError) Error() string { return e.Err.Error() + "\n" + e.Logs }
func (e *StartError) Unwrap() error { return e.Err }

// Start starts a cluster as described by opts: managers, then servers, then
// the gateway. It waits until the first manager has seen every server, runs
// `kumoctl MGR attach` and polls the gateway with a memcached set and get of
// a probe key (deleted again) until both work. On error everything started is stopped and
// the error is a *StartError.
func Start(opts Options) (*Cluster, error) {
	if opts.Servers <= 0 {
		opts.Servers = 3
	}
	if opts.Managers <= 0 {
		opts.Managers = 1
	}
	if opts.Managers > 2 {
		return nil, fmt.Errorf("localcluster: %d managers; want 1 or 2", opts.Managers)
	}
	if opts.BinDir == "" {
		return nil, errors.New("localcluster: Options.BinDir is empty")
	}
	if opts.Context == nil {
		opts.Context = context.Background()
	}
	c := &Cluster{opts: opts, taken: make(map[int]bool)}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "kumo-local-")
		if err != nil {
			return nil, fmt.Errorf("localcluster: %w", err)
		}
		c.dir, c.tempDir = d, true
	} else {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("localcluster: %w", err)
		}
		c.dir = opts.Dir
	}
	if err := c.start(); err != nil {
		logs := c.dumpString()
		c.Stop()
		return nil, &StartError{Err: err, Logs: logs}
	}
	return c, nil
}

func (c *Cluster) port(preferred int) (int, error) {
	if !c.opts.PreferDefaultPorts {
		preferred = 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return portOr(preferred, c.taken)
}

func hostPort(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }

func (c *Cluster) bin(name string) string { return filepath.Join(c.opts.BinDir, name) }

// common returns the arguments every daemon gets.
func (c *Cluster) common(logPath string) []string {
	a := []string{"-o", logPath}
	if c.opts.Verbose {
		a = append(a, "-v")
	}
	return a
}

// managerArgs returns -m MGR1 [-p MGR2].
func (c *Cluster) managerArgs() []string {
	a := []string{"-m", c.mgrAddrs[0]}
	if len(c.mgrAddrs) > 1 {
		a = append(a, "-p", c.mgrAddrs[1])
	}
	return a
}

func (c *Cluster) start() error {
	for i := range c.opts.Managers {
		p, err := c.port(DefaultManagerPort + i)
		if err != nil {
			return err
		}
		c.mgrAddrs = append(c.mgrAddrs, hostPort(p))
	}
	for i, addr := range c.mgrAddrs {
		name := "manager-" + strconv.Itoa(i+1)
		log := filepath.Join(c.dir, name+".log")
		args := []string{"-l", addr}
		if len(c.mgrAddrs) > 1 {
			args = append(args, "-p", c.mgrAddrs[1-i])
		}
		args = append(append(args, c.common(log)...), c.opts.ExtraManagerArgs...)
		p := &Proc{Name: name, Path: c.bin("kumo-manager"), Args: args, Addr: addr, LogPath: log}
		c.managers = append(c.managers, p)
		if err := p.Start(); err != nil {
			return err
		}
	}
	var added []*Proc
	for range c.opts.Servers {
		p, err := c.startServer()
		if err != nil {
			return err
		}
		added = append(added, p)
	}
	for _, p := range added {
		if err := c.serverUp(p, 0); err != nil {
			return err
		}
	}
	if err := c.startGateway(); err != nil {
		return err
	}
	if c.opts.NoAttach {
		return nil
	}
	if _, err := c.Ctl("attach"); err != nil {
		return err
	}
	err := c.Probe(ReadyTimeout)
	if errors.Is(err, ErrExited) && c.gateway != nil && bindFailed(c.gateway) && c.opts.GatewayTextPort <= 0 && c.opts.GatewayBinaryPort <= 0 {
		// A kernel-chosen port was taken before the gateway bound it.
		if err := c.startGateway(); err != nil {
			return err
		}
		err = c.Probe(ReadyTimeout)
	}
	if err != nil {
		return err
	}
	return c.managersAgree(ReadyTimeout)
}

// managersAgree waits until every manager reports the first one's hash
// space: the attach reaches the partner asynchronously, and a test that
// kills the first manager at once must not leave the other without it.
func (c *Cluster) managersAgree(timeout time.Duration) error {
	if len(c.mgrAddrs) < 2 {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		var want, got string
		out, err := c.Ctl("status")
		if err == nil {
			want, _, _ = strings.Cut(out, "not attached node:")
			out, err = c.run("kumoctl", []string{c.mgrAddrs[1], "status"})
			got, _, _ = strings.Cut(out, "not attached node:")
		}
		if err == nil && got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: managers disagree after %v: %q and %q (%v)", ErrTimeout, timeout, want, got, err)
		}
		select {
		case <-c.opts.Context.Done():
			return fmt.Errorf("localcluster: %w", c.opts.Context.Err())
		case <-time.After(4 * pollInterval):
		}
	}
}

// bindFailed reports whether p's current run logged that its address was
// in use.
func bindFailed(p *Proc) bool {
	return p.WaitLog("address already in use", 0) == nil
}

// serverUp waits until the first manager logs p (started after manager log
// offset off) as a new node. A server that exited because its kernel-chosen
// port was taken in the meantime is started once more on new ports.
func (c *Cluster) serverUp(p *Proc, off int64) error {
	err := c.waitNewNode(p, off)
	if err == nil || !errors.Is(err, ErrExited) || !bindFailed(p) {
		return err
	}
	sp, err := c.port(0)
	if err != nil {
		return err
	}
	lp, err := c.port(0)
	if err != nil {
		return err
	}
	p.Addr = hostPort(sp)
	setArg(p.Args, "-l", p.Addr)
	setArg(p.Args, "-L", strconv.Itoa(lp))
	off = c.managers[0].LogSize()
	if err := p.Start(); err != nil {
		return err
	}
	return c.waitNewNode(p, off)
}

// setArg replaces the value after the option name in args.
func setArg(args []string, name, value string) {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			args[i+1] = value
			return
		}
	}
}

// waitNewNode waits until the first manager logs "new node ADDR" for p after
// log offset off.
func (c *Cluster) waitNewNode(p *Proc, off int64) error {
	m := c.managers[0]
	deadline := time.Now().Add(ReadyTimeout)
	for {
		err := m.WaitLogAfter(off, "new node "+p.Addr, pollInterval)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrTimeout) {
			return err
		}
		if !p.Alive() {
			return fmt.Errorf("%w: %s exited (%v)", ErrExited, p.Name, p.Wait())
		}
		if err := c.opts.Context.Err(); err != nil {
			return fmt.Errorf("localcluster: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s never logged \"new node %s\"", ErrTimeout, m.Name, p.Addr)
		}
	}
}

// startServer starts one more server process.
func (c *Cluster) startServer() (*Proc, error) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil, ErrStopped
	}
	n := len(c.servers) + 1
	c.mu.Unlock()
	sp, err := c.port(DefaultServerPort + n)
	if err != nil {
		return nil, err
	}
	lp, err := c.port(DefaultStreamPort + n)
	if err != nil {
		return nil, err
	}
	name := "server-" + strconv.Itoa(n)
	log := filepath.Join(c.dir, name+".log")
	args := []string{"-l", hostPort(sp), "-L", strconv.Itoa(lp)}
	args = append(args, c.managerArgs()...)
	args = append(args, "-s", filepath.Join(c.dir, name+".kch"))
	args = append(append(args, c.common(log)...), c.opts.ExtraServerArgs...)
	if c.opts.EmbeddedGateway && n == 1 {
		gw, err := c.gatewayArgs()
		if err != nil {
			return nil, err
		}
		args = append(args, gw...)
	}
	p := &Proc{Name: name, Path: c.bin("kumo-server"), Args: args, Addr: hostPort(sp), LogPath: log}
	c.mu.Lock()
	c.servers = append(c.servers, p)
	c.mu.Unlock()
	return p, p.Start()
}

// gatewayArgs picks the gateway's listen ports and returns its -t and -b
// options.
func (c *Cluster) gatewayArgs() ([]string, error) {
	tp, err := c.port(0)
	if c.opts.GatewayTextPort > 0 {
		tp, err = c.opts.GatewayTextPort, nil
	}
	if err != nil {
		return nil, err
	}
	c.gwText = hostPort(tp)
	args := []string{"-t", c.gwText}
	if bp := c.opts.GatewayBinaryPort; bp != 0 {
		if bp < 0 {
			if bp, err = c.port(0); err != nil {
				return nil, err
			}
		}
		c.gwBinary = hostPort(bp)
		args = append(args, "-b", c.gwBinary)
	}
	return args, nil
}

func (c *Cluster) startGateway() error {
	if c.opts.EmbeddedGateway {
		return nil // the first server serves it
	}
	gw, err := c.gatewayArgs()
	if err != nil {
		return err
	}
	log := filepath.Join(c.dir, "gateway.log")
	args := append(c.managerArgs(), gw...)
	args = append(append(args, c.common(log)...), c.opts.ExtraGatewayArgs...)
	c.gateway = &Proc{Name: "gateway", Path: c.bin("kumo-gateway"), Args: args, Addr: c.gwText, LogPath: log}
	return c.gateway.Start()
}

// Probe polls the gateway with a memcached set, get and delete of a probe key until
// both work, for up to timeout.
func (c *Cluster) Probe(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = probe(c.gwText, time.Second); last == nil {
			return nil
		}
		gw := c.gateway
		if gw == nil { // an embedded gateway: the first server serves it
			gw = c.Server(0)
		}
		if !gw.Alive() {
			return fmt.Errorf("%w: %s exited (%v)", ErrExited, gw.Name, gw.Wait())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: gateway %s not ready after %v: %w", ErrTimeout, c.gwText, timeout, last)
		}
		select {
		case <-c.opts.Context.Done():
			return fmt.Errorf("localcluster: %w", c.opts.Context.Err())
		case <-time.After(4 * pollInterval):
		}
	}
}

// BinDir returns the folder of the binaries.
func (c *Cluster) BinDir() string { return c.opts.BinDir }

// Dir returns the data and log folder.
func (c *Cluster) Dir() string { return c.dir }

// Manager returns the address of manager i (0-based).
func (c *Cluster) Manager(i int) string { return c.mgrAddrs[i] }

// ManagerProc returns manager i (0-based).
func (c *Cluster) ManagerProc(i int) *Proc { return c.managers[i] }

// Gateway returns the gateway's memcached text address (host:port).
func (c *Cluster) Gateway() string { return c.gwText }

// GatewayBinary returns the gateway's memcached binary address, or "" when
// it has none.
func (c *Cluster) GatewayBinary() string { return c.gwBinary }

// GatewayProc returns the gateway process.
func (c *Cluster) GatewayProc() *Proc { return c.gateway }

// NumServers returns the number of servers started (killed ones included).
func (c *Cluster) NumServers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.servers)
}

// Server returns server i (0-based, in start order). It panics if i is out
// of range.
func (c *Cluster) Server(i int) *Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// Procs returns every process: managers, servers, gateway.
func (c *Cluster) Procs() []*Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := append([]*Proc(nil), c.managers...)
	ps = append(ps, c.servers...)
	if c.gateway != nil {
		ps = append(ps, c.gateway)
	}
	return ps
}

// KillServer kills server i with SIGKILL and waits until it is gone.
func (c *Cluster) KillServer(i int) error { return c.Server(i).Kill() }

// RestartServer starts server i again with the same arguments (stopping it
// first if it runs) and waits until the first manager logs it as a new node.
// It does not attach it.
func (c *Cluster) RestartServer(i int) error {
	p := c.Server(i)
	p.Stop()
	off := c.managers[0].LogSize()
	if err := p.Start(); err != nil {
		return err
	}
	return c.waitNewNode(p, off)
}

// AddServer starts one more server and waits until the first manager logs
// it as a new node. It does not attach it.
func (c *Cluster) AddServer() (*Proc, error) {
	off := c.managers[0].LogSize()
	p, err := c.startServer()
	if err != nil {
		return nil, err
	}
	return p, c.serverUp(p, off)
}

// Ctl runs `kumoctl MGR args...` against the first manager and returns its
// standard output. On failure the error holds the tool's standard error.
func (c *Cluster) Ctl(args ...string) (string, error) {
	return c.run("kumoctl", append([]string{c.mgrAddrs[0]}, args...))
}

// Stat runs `kumostat -m MGR args...` against the first manager.
func (c *Cluster) Stat(args ...string) (string, error) {
	return c.run("kumostat", append([]string{"-m", c.mgrAddrs[0]}, args...))
}

// StatServer runs `kumostat SERVER args...` against server i.
func (c *Cluster) StatServer(i int, args ...string) (string, error) {
	return c.run("kumostat", append([]string{c.Server(i).Addr}, args...))
}

func (c *Cluster) run(tool string, args []string) (string, error) {
	ctx, cancel := context.WithTimeout(c.opts.Context, ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin(tool), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("localcluster: %s %v: %w: %s", tool, args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// Stop stops every process (gateway first, then servers, then managers;
// each gets SIGTERM and, after its StopTimeout, SIGKILL) and removes the
// data folder if Start created it. It is safe to call more than once.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	servers := append([]*Proc(nil), c.servers...)
	c.mu.Unlock()
	if c.gateway != nil {
		c.gateway.Stop()
	}
	stopAll(servers)
	stopAll(c.managers)
	if c.tempDir {
		os.RemoveAll(c.dir)
	}
}

// stopAll stops ps in parallel.
func stopAll(ps []*Proc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.Stop() })
	}
	wg.Wait()
}

// DumpLines is the number of log lines per process that Dump shows.
const DumpLines = 40

// Dump writes the command line and the last DumpLines log lines of every
// process to w.
func (c *Cluster) Dump(w io.Writer) {
	io.WriteString(w, c.dumpString())
}

func (c *Cluster) dumpString() string {
	var b bytes.Buffer
	for _, p := range c.Procs() {
		state := "exited"
		if p.Alive() {
			state = "running, pid " + strconv.Itoa(p.Pid())
		} else if p.Pid() == 0 {
			state = "not started"
		}
		fmt.Fprintf(&b, "==> %s (%s) %s\n", p.String(), state, p.LogPath)
		b.WriteString(p.Tail(DumpLines))
	}
	return b.String()
}

// StartT starts a cluster for a test: binaries from BinDir (built once) when
// opts.BinDir is empty, data in t.TempDir() when opts.Dir is empty. It
// registers Stop with t.Cleanup and, if the test failed, logs the tails of
// every log first. On a start error the test fails at once with the logs.
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.BinDir == "" {
		d, err := BinDir()
		if err != nil {
			t.Fatal(err)
		}
		opts.BinDir = d
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	c, err := Start(opts)
	if err != nil {
		t.Fatalf("localcluster: start: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cluster logs:\n%s", c.dumpString())
		}
		c.Stop()
		if t.Failed() {
			if dir := os.Getenv(KeepLogsEnv); dir != "" {
				if kept, err := c.keepLogs(dir, t.Name()); err != nil {
					t.Logf("keeping the cluster logs: %v", err)
				} else {
					t.Logf("cluster logs kept in %s", kept)
				}
			}
		}
	})
	return c
}

// KeepLogsEnv names the environment variable that, set to a folder, has
// StartT copy the whole logs of a failed test's cluster there (into a
// folder named after the test), before its temporary folder goes.
const KeepLogsEnv = "KUMO_KEEP_LOGS"

// keepLogs copies every process's log into dir/<test name>/ and returns
// that folder.
func (c *Cluster) keepLogs(dir, test string) (string, error) {
	dst := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(test))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", err
	}
	for _, p := range c.Procs() {
		if p.LogPath == "" {
			continue
		}
		b, err := os.ReadFile(p.LogPath)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(p.LogPath)), b, 0o644); err != nil {
			return "", err
		}
	}
	return dst, nil
}
