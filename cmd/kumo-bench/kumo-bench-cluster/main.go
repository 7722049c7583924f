// Command kumo-bench-cluster is the side-by-side cluster benchmark behind
// `make bench-cluster` (scripts/bench-cluster.sh). It starts, on this
// machine, memcached (-t 2), a kumo cluster with one server and one with
// three (each with a kumo-gateway process, through internal/localcluster),
// and the same two with the gateway embedded in the first server
// (kumo-server -t), runs the same
// kumo-bench loads against each in alternation for several rounds, and
// prints the medians and their ratios to memcached as a Markdown table for
// BENCHMARKS.md. When twemproxy (Debian's nutcracker) is installed, the
// same memcached is also measured through it: memcached with a proxy in
// front, which pays for one process hop as kumo-gateway does.
//
//	kumo-bench-cluster [-B BINDIR] [-t 10s] [-rounds 3] [-pprof DIR]
//
// The loads are 16 connections, 1 KiB values, 10,000 keys: 90% gets; 100%
// sets; 90% gets pipelined 16 deep. With -client-session kumo-bench runs
// in a session of its own (see kumoBench). With -pprof it afterwards takes 10 s CPU
// profiles of the gateway and a server of each cluster during a 90%-get run
// and writes `go tool pprof -top` of each into DIR.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"kumofs/internal/cli"
	"kumofs/internal/localcluster"
)

// config is the parsed command line.
type config struct {
	binDir    string
	dur       time.Duration
	rounds    int
	conns     int
	size      int
	keys      int
	memcached string
	twemproxy string
	pprofDir  string
	only      string // comma-separated targets to run besides memcached ("" = all)
	// clientSession runs kumo-bench in a session of its own instead of
	// this program's, where the systems under test run.
	clientSession bool

	// loadavg at the start and the end of the rounds, for the record.
	loadStart, loadEnd string
}

// load is one kumo-bench workload.
type load struct {
	name string
	args []string
}

// target is one system under test.
type target struct {
	name string
	addr string
	// pprof addresses of its gateway and one server ("" = none).
	gwPprof, srvPprof string

	cluster *localcluster.Cluster // nil for memcached
	dir     string                // the cluster's data and logs
}

// check fails when a process of t's cluster has exited; it writes the
// tails of the cluster's logs to w first.
func (t *target) check(w io.Writer) error {
	if t.cluster == nil {
		return nil
	}
	for _, p := range t.cluster.Procs() {
		if !p.Alive() {
			t.cluster.Dump(w)
			return fmt.Errorf("%s: %s exited (logs in %s)", t.name, p.Name, t.dir)
		}
	}
	return nil
}

// report is the part of kumo-bench -json the driver reads.
type report struct {
	OpsPerSec float64 `json:"ops_per_sec"`
	HitRate   float64 `json:"hit_rate"`
	Errors    uint64  `json:"errors"`
	Wrong     uint64  `json:"wrong"`
	P50       float64 `json:"p50_us"`
	P99       float64 `json:"p99_us"`
}

// init keeps main on the process's main thread. The daemons (started by
// localcluster from this goroutine) and memcached get SIGKILL when the
// thread that started them exits (Pdeathsig is per thread, golang/go#27505);
// the main thread lives as long as the process.
func init() { runtime.LockOSThread() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c config
	fs := cli.New("kumo-bench-cluster", "usage: kumo-bench-cluster [-B BINDIR] [-t 10s] [-rounds 3] [-pprof DIR]\n"+
		"kumo-bench against memcached, a 1-server and a 3-server kumo cluster, side by side.")
	fs.Stdout, fs.Stderr = stdout, stderr
	code := -1
	fs.ExitFunc = func(c int) { code = c }
	fs.String(&c.binDir, "-B", "--bin-dir", "bin", "folder of the kumo binaries (make build); without -B: bin in the working directory, in the module root or this program's folder")
	fs.Seconds(&c.dur, "-t", "--time", 10*time.Second, "seconds per measurement")
	fs.Int(&c.rounds, "-rounds", "--rounds", 3, "rounds of every load against every target")
	fs.Int(&c.conns, "-c", "--connections", 16, "kumo-bench connections")
	fs.Int(&c.size, "-d", "--data-size", 1024, "value size")
	fs.Int(&c.keys, "-keys", "--keys", 10000, "key space")
	fs.String(&c.memcached, "-memcached", "--memcached", "memcached", "the memcached program")
	fs.String(&c.twemproxy, "-twemproxy", "--twemproxy", "nutcracker", "the twemproxy program; the twemproxy column is left out when it is not installed")
	fs.String(&c.only, "-only", "--only", "", "run only these targets besides memcached, comma-separated: twemproxy, 1, 3, 1e, 3e (e: embedded gateway); default all")
	fs.Bool(&c.clientSession, "-client-session", "--client-session", "run kumo-bench in a session of its own, apart from the systems under test (see BENCHMARKS.md, session 18)")
	fs.String(&c.pprofDir, "-pprof", "--pprof", "", "write CPU profile tops of the daemons into this folder")
	fs.Exit(fs.Parse(args))
	if code >= 0 {
		return code
	}
	if c.rounds < 1 || c.dur <= 0 {
		fs.Fail("need -rounds >= 1 and -t > 0")
		return 1
	}
	if err := checkOnly(c.only); err != nil {
		fs.Fail("%s", err)
		return 1
	}
	dir, err := findBinDir(c.binDir, fs.IsSet("-B"))
	if err == nil {
		c.binDir = dir
		err = bench(ctx, &c, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "error: "+strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " "))
		return 1
	}
	return 0
}

// onlyNames are the target names -only takes.
var onlyNames = []string{"twemproxy", "1", "3", "1e", "3e"}

// checkOnly reports a name in -only's list that names no target.
func checkOnly(only string) error {
	if only == "" {
		return nil
	}
	for _, n := range strings.Split(only, ",") {
		if !slices.Contains(onlyNames, n) {
			return fmt.Errorf("-only: unknown target %q (want %s)", n, strings.Join(onlyNames, ", "))
		}
	}
	return nil
}

// wants reports whether the target named id is to be run.
func (c *config) wants(id string) bool {
	return c.only == "" || slices.Contains(strings.Split(c.only, ","), id)
}

// binaries are the programs kumo-bench-cluster runs from the bin folder.
var binaries = []string{"kumo-bench", "kumo-manager", "kumo-server", "kumo-gateway", "kumoctl", "kumostat"}

// findBinDir returns the absolute folder of the kumo binaries. A -B given
// on the command line (explicit) is taken relative to the working
// directory. Without it, dir ("bin") is looked for in the working
// directory, then in the module root above it (go.mod), then as this
// program's own folder (make build puts kumo-bench-cluster next to the
// others); the first that holds every binary wins. The error names the
// first binary missing from the folder that was (most likely) meant.
func findBinDir(dir string, explicit bool) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	candidates := []string{abs}
	if !explicit && !filepath.IsAbs(dir) {
		if root, err := localcluster.ModuleRoot(); err == nil {
			candidates = append(candidates, filepath.Join(root, dir))
		}
	}
	var first error
	for _, d := range candidates {
		err := checkBinDir(d)
		if err == nil {
			return d, nil
		}
		if st, serr := os.Stat(d); first == nil && serr == nil && st.IsDir() {
			first = err // the first folder that exists explains best
		}
	}
	if !explicit && !filepath.IsAbs(dir) {
		if exe, err := os.Executable(); err == nil && checkBinDir(filepath.Dir(exe)) == nil {
			return filepath.Dir(exe), nil
		}
	}
	if first == nil {
		first = checkBinDir(abs)
	}
	return "", first
}

// checkBinDir fails when dir lacks one of the binaries, naming it.
func checkBinDir(dir string) error {
	for _, name := range binaries {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s not found in %s (run make build, or give -B the folder of the kumo binaries)", name, dir)
		}
	}
	return nil
}

// bench starts the three targets (from the binaries in c.binDir, an
// absolute path), runs the rounds and prints the tables.
func bench(ctx context.Context, c *config, stdout, stderr io.Writer) (retErr error) {
	kb := filepath.Join(c.binDir, "kumo-bench")
	logf := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	c.loadStart = loadavg()
	logf("loadavg at start: %s", c.loadStart)

	mc, mcAddr, err := startMemcached(ctx, c.memcached)
	if err != nil {
		return err
	}
	defer func() { mc.Process.Kill(); mc.Wait() }()

	targets := []*target{{name: "memcached", addr: mcAddr}}
	tpDir, err := os.MkdirTemp("", "kumo-bench-cluster-twemproxy-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tpDir)
	_, lookErr := exec.LookPath(c.twemproxy)
	switch {
	case !c.wants("twemproxy"): // left out by -only
	case lookErr != nil:
		logf("%s not found: no %s column (scripts/install-test-tools.sh installs it)", c.twemproxy, twemproxyName)
	default:
		tp, tpAddr, err := startTwemproxy(ctx, c.twemproxy, mcAddr, tpDir)
		if err != nil {
			return err
		}
		defer func() { tp.Process.Kill(); tp.Wait() }()
		targets = append(targets, &target{name: twemproxyName, addr: tpAddr})
	}
	for _, kind := range []struct {
		n        int
		embedded bool
	}{{1, false}, {3, false}, {1, true}, {3, true}} {
		n := kind.n
		id := strconv.Itoa(n)
		if kind.embedded {
			id += "e"
		}
		if !c.wants(id) {
			continue
		}
		t := &target{name: fmt.Sprintf("kumo %d server", n)}
		if n > 1 {
			t.name += "s"
		}
		if kind.embedded {
			t.name += embeddedSuffix
		}
		// Start leaves a folder it did not create in place, so the logs
		// survive a failed run; bench removes it when all went well.
		dir, err := os.MkdirTemp("", fmt.Sprintf("kumo-bench-cluster-%d-*", n))
		if err != nil {
			return err
		}
		opts := localcluster.Options{BinDir: c.binDir, Servers: n, Context: ctx, Dir: dir, EmbeddedGateway: kind.embedded}
		if c.pprofDir != "" && !kind.embedded {
			t.gwPprof, t.srvPprof = freeAddr(), freeAddr()
			opts.ExtraGatewayArgs = []string{"--pprof", t.gwPprof}
			// Every server gets the same address: the first binds it, the
			// others log that it is taken and run on.
			opts.ExtraServerArgs = []string{"--pprof", t.srvPprof}
		}
		logf("starting %s ...", t.name)
		cl, err := localcluster.Start(opts)
		if err != nil {
			return fmt.Errorf("%w (logs in %s)", err, dir)
		}
		defer func() {
			cl.Stop()
			if retErr == nil {
				os.RemoveAll(dir)
			}
		}()
		t.addr, t.cluster, t.dir = cl.Gateway(), cl, dir
		targets = append(targets, t)
	}

	common := []string{"-c", strconv.Itoa(c.conns), "-d", strconv.Itoa(c.size), "-keys", strconv.Itoa(c.keys), "-q", "-json"}
	for _, t := range targets {
		if t.name == twemproxyName {
			continue // the same memcached
		}
		logf("preloading %s (%s)", t.name, t.addr)
		if _, err := kumoBench(ctx, kb, c.clientSession, append([]string{"-s", t.addr, "-preload", "-n", "1"}, common...)); err != nil {
			return fmt.Errorf("preload %s: %w", t.name, err)
		}
	}
	secs := strconv.FormatFloat(c.dur.Seconds(), 'f', -1, 64)
	loads := []load{
		{"90% gets", []string{"-ratio", "1:9", "-t", secs}},
		{"100% sets", []string{"-ratio", "1:0", "-t", secs}},
		{"90% gets, pipeline 16", []string{"-ratio", "1:9", "-P", "16", "-t", secs}},
	}
	// results[load][target] holds one report per round.
	results := make([][][]report, len(loads))
	for i := range results {
		results[i] = make([][]report, len(targets))
	}
	for r := 0; r < c.rounds; r++ {
		for li, l := range loads {
			for k := range targets {
				ti := (k + r) % len(targets) // rotate who goes first
				t := targets[ti]
				rep, err := kumoBench(ctx, kb, c.clientSession, append(append([]string{"-s", t.addr}, common...), l.args...))
				if cerr := t.check(stderr); cerr != nil {
					return cerr
				}
				if err != nil {
					return fmt.Errorf("%s on %s: %w", l.name, t.name, err)
				}
				results[li][ti] = append(results[li][ti], rep)
				logf("round %d  %-22s %-16s %8.0f ops/s  p50 %6.0fus  p99 %7.0fus  hit %.3f  errors %d",
					r+1, l.name, t.name, rep.OpsPerSec, rep.P50, rep.P99, rep.HitRate, rep.Errors)
			}
		}
	}
	c.loadEnd = loadavg()
	logf("loadavg at end: %s", c.loadEnd)
	printTables(stdout, c, loads, targets, results)

	if c.pprofDir != "" {
		var profiled []*target
		for _, t := range targets {
			if t.gwPprof != "" {
				profiled = append(profiled, t)
			}
		}
		if err := profile(ctx, c, kb, common, profiled, logf); err != nil {
			return err
		}
	}
	return nil
}

// kumoBench runs kumo-bench with args (which include -json) and decodes its
// report. Exit status 1 with a report (errors during the run) is not an
// error here; the errors are in the report.
//
// With ownSession, kumo-bench runs in a session of its own. Where Linux's
// scheduler autogroups are on (/proc/sys/kernel/sched_autogroup_enabled),
// each session then shares the CPUs as one group: the load generator gets
// half of a busy machine and the system under test the other half, as an
// application and a cache service in their own sessions or cgroups would.
// In one session the CPUs are shared thread by thread, so the side with
// more runnable threads gets more. On 2 CPUs the choice moves the ratios
// both ways (BENCHMARKS.md, session 18), so it is a flag and the default
// stays the setup of every earlier run.
func kumoBench(ctx context.Context, kb string, ownSession bool, args []string) (report, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, kb, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if ownSession {
		cmd.SysProcAttr = clientAttr()
	}
	runErr := cmd.Run()
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		if runErr != nil {
			return rep, fmt.Errorf("%w: %s", runErr, strings.TrimSpace(errb.String()))
		}
		return rep, fmt.Errorf("bad kumo-bench output %q: %w", out.String(), err)
	}
	return rep, nil
}

// startMemcached starts memcached -t 2 on a free 127.0.0.1 port and waits
// until it accepts connections.
func startMemcached(ctx context.Context, prog string) (*exec.Cmd, string, error) {
	path, err := exec.LookPath(prog)
	if err != nil {
		return nil, "", fmt.Errorf("%w (scripts/install-test-tools.sh installs it)", err)
	}
	port, err := localcluster.FreePort()
	if err != nil {
		return nil, "", err
	}
	args := []string{"-p", strconv.Itoa(port), "-l", "127.0.0.1", "-t", "2", "-m", "1024", "-U", "0"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command(path, args...)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := startListening(ctx, cmd, addr); err != nil {
		return nil, "", fmt.Errorf("memcached on %s: %w", addr, err)
	}
	return cmd, addr, nil
}

// startListening starts cmd (to die with this process) and waits until it
// accepts connections on addr; it kills cmd if that does not happen within
// 10 s.
func startListening(ctx context.Context, cmd *exec.Cmd, addr string) error {
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			nc.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return err
		}
		time.Sleep(50 * time.Millisecond) // poll until it listens
	}
}

// freeAddr returns 127.0.0.1:PORT on a port that was just free.
func freeAddr() string {
	p, err := localcluster.FreePort()
	if err != nil {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
}

// loadavg returns /proc/loadavg without its newline.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// embeddedSuffix names the targets whose first server serves memcached
// itself (kumo-server -t, no kumo-gateway process). The targets are
// for the standard topology, a kumo-gateway process in front of the servers.
const embeddedSuffix = ", embedded gateway"

// targetRatio is the ratio each (load, kumo target) must reach, from the
// issue; 0 = none.
func targetRatio(load int, target string) float64 {
	switch {
	case load == 0 && target == "kumo 1 server":
		return 0.7
	case load == 0 && target == "kumo 3 servers":
		return 0.5
	case load == 1 && target == "kumo 3 servers":
		return 0.3
	}
	return 0
}

// printTables prints the medians and ratios as Markdown, then every run.
func printTables(w io.Writer, c *config, loads []load, targets []*target, results [][][]report) {
	fmt.Fprintf(w, "Medians of %d rounds of %s each, kumo-bench -c %d -d %d -keys %d (ops/s; ratio to memcached; target in brackets):\n\n",
		c.rounds, c.dur, c.conns, c.size, c.keys)
	fmt.Fprint(w, "| load |")
	for _, t := range targets {
		fmt.Fprintf(w, " %s |", t.name)
	}
	fmt.Fprint(w, "\n|---|")
	for range targets {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for li, l := range loads {
		fmt.Fprintf(w, "| %s |", l.name)
		var base float64
		for ti, t := range targets {
			var ops []float64
			var errs uint64
			for _, r := range results[li][ti] {
				ops = append(ops, r.OpsPerSec)
				errs += r.Errors + r.Wrong
			}
			m := median(ops)
			cell := fmt.Sprintf(" %.0f", m)
			if ti == 0 {
				base = m
			} else if base > 0 {
				cell += fmt.Sprintf(" (%.2f×", m/base)
				if tr := targetRatio(li, t.name); tr > 0 {
					mark := "below"
					if m/base >= tr {
						mark = "met"
					}
					cell += fmt.Sprintf(" [≥ %.1f× %s]", tr, mark)
				}
				cell += ")"
			}
			if errs > 0 {
				cell += fmt.Sprintf(" %d errors", errs)
			}
			fmt.Fprintf(w, "%s |", cell)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nloadavg: %s at the start, %s at the end.\n", c.loadStart, c.loadEnd)
	fmt.Fprintln(w, "\nEvery run (ops/s, p50/p99 µs):")
	fmt.Fprintln(w)
	for li, l := range loads {
		for ti, t := range targets {
			var parts []string
			for _, r := range results[li][ti] {
				p := fmt.Sprintf("%.0f (%.0f/%.0f)", r.OpsPerSec, r.P50, r.P99)
				if r.Errors+r.Wrong > 0 {
					p += fmt.Sprintf(" [%d errors, %d wrong]", r.Errors, r.Wrong)
				}
				parts = append(parts, p)
			}
			fmt.Fprintf(w, "- %s, %s: %s\n", l.name, t.name, strings.Join(parts, ", "))
		}
	}
}

// profile takes CPU profiles of the gateway and the first server of each
// kumo target during a 90%-get run and writes their tops into c.pprofDir.
func profile(ctx context.Context, c *config, kb string, common []string, targets []*target, logf func(string, ...any)) error {
	if err := os.MkdirAll(c.pprofDir, 0o755); err != nil {
		return err
	}
	const secs = 10
	for _, t := range targets {
		logf("profiling %s for %d s during 90%% gets", t.name, secs)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, addr := range []string{t.gwPprof, t.srvPprof} {
			role := []string{"gateway", "server"}[i]
			file := filepath.Join(c.pprofDir, strings.ReplaceAll(t.name, " ", "-")+"-"+role+".top")
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-seconds", strconv.Itoa(secs),
					"http://"+addr+"/debug/pprof/profile")
				out, err := cmd.CombinedOutput()
				if err != nil {
					errs[i] = fmt.Errorf("pprof %s %s: %w: %s", t.name, role, err, out)
					return
				}
				errs[i] = os.WriteFile(file, out, 0o644)
			}()
		}
		_, err := kumoBench(ctx, kb, c.clientSession, append(append([]string{"-s", t.addr}, common...),
			"-ratio", "1:9", "-t", strconv.Itoa(secs+3)))
		wg.Wait()
		if err = errors.Join(append(errs, err)...); err != nil {
			return err
		}
	}
	logf("profiles in %s", c.pprofDir)
	return nil
}
