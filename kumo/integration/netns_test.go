package integration

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/ring"
)

// netLab is a set of network namespaces joined by a bridge in a hub
// namespace, each node with its own address, created and removed by the
// test. Nothing outside these namespaces is touched.
type netLab struct {
	t      *testing.T
	prefix string // namespace name prefix
	net    string // "10.N.0."
	procs  []*exec.Cmd
	nodes  []string
	dir    string
}

func (l *netLab) ip(args ...string) {
	l.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newNetLab(t *testing.T) *netLab {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is not installed")
	}
	id := rand.Intn(1 << 16)
	l := &netLab{t: t, prefix: fmt.Sprintf("kt%04x", id), net: fmt.Sprintf("10.%d.%d.", 200+rand.Intn(50), rand.Intn(250)), dir: t.TempDir()}
	hub := l.prefix + "-hub"
	if out, err := exec.Command("ip", "netns", "add", hub).CombinedOutput(); err != nil {
		t.Skipf("cannot create network namespaces here: %v: %s", err, out)
	}
	t.Cleanup(l.close)
	l.ip("-n", hub, "link", "add", "br0", "type", "bridge")
	l.ip("-n", hub, "link", "set", "br0", "up")
	return l
}

// node creates namespace name with address net+host.
func (l *netLab) node(name string, host int) string {
	ns := l.prefix + "-" + name
	l.ip("netns", "add", ns)
	l.nodes = append(l.nodes, ns)
	hub := l.prefix + "-hub"
	v := fmt.Sprintf("v%d", host)
	l.ip("-n", hub, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.ip("-n", hub, "link", "set", v, "master", "br0")
	l.ip("-n", hub, "link", "set", v, "up")
	l.ip("-n", ns, "addr", "add", l.net+strconv.Itoa(host)+"/24", "dev", "eth0")
	l.ip("-n", ns, "link", "set", "eth0", "up")
	l.ip("-n", ns, "link", "set", "lo", "up")
	return ns
}

// start runs a binary inside namespace ns, logging to dir/name.log.
func (l *netLab) start(ns, name, bin string, args ...string) *exec.Cmd {
	l.t.Helper()
	f, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.procs = append(l.procs, cmd)
	return cmd
}

// run runs a tool inside ns and returns its output.
func (l *netLab) run(ns string, timeout time.Duration, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, bin}, args...)...).CombinedOutput()
	return string(out), err
}

func (l *netLab) logHas(name, substr string) bool {
	b, _ := os.ReadFile(filepath.Join(l.dir, name+".log"))
	return bytes.Contains(b, []byte(substr))
}

func (l *netLab) close() {
	for _, c := range l.procs {
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		c.Wait()
	}
	if l.t.Failed() {
		for _, n := range []string{"manager", "gateway", "server-1", "server-4"} {
			b, _ := os.ReadFile(filepath.Join(l.dir, n+".log"))
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			l.t.Logf("==> %s\n%s", n, b)
		}
	}
	for _, ns := range append(l.nodes, l.prefix+"-hub") {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// Ensure that a cluster spread over network namespaces, each daemon with
// its own address, keeps serving a verifying load while 3 servers are
// attached to 3, loses nothing, and that afterwards every server answers a
// share of the gets that follows its share of the ring.
func TestMultiHostScaleOut(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-host test in -short mode")
	}
	l := newNetLab(t)
	bin, err := localcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	b := func(name string) string { return filepath.Join(bin, name) }
	mgr := l.net + "1"
	mns := l.node("mgr", 1)
	l.start(mns, "manager", b("kumo-manager"), "-l", mgr, "-o", "-")
	var servers []string
	startServer := func(i int) {
		host := 10 + i
		addr := l.net + strconv.Itoa(host)
		ns := l.node(fmt.Sprintf("s%d", i), host)
		l.start(ns, fmt.Sprintf("server-%d", i), b("kumo-server"), "-l", addr, "-m", mgr,
			"-s", filepath.Join(l.dir, fmt.Sprintf("s%d.kch", i)), "-o", "-")
		servers = append(servers, addr+":19800")
	}
	for i := 1; i <= 3; i++ {
		startServer(i)
	}
	gw := l.net + "5"
	gns := l.node("gw", 5)
	l.start(gns, "gateway", b("kumo-gateway"), "-m", mgr, "-t", gw+":11211", "-o", "-")
	cns := l.node("client", 6)
	waitNew := func(n int) {
		eventually(t, 30*time.Second, fmt.Sprintf("%d servers at the manager", n), func() bool {
			c := 0
			for _, s := range servers {
				if l.logHas("manager", "new node "+s) {
					c++
				}
			}
			return c >= n
		})
	}
	attach := func(n int) {
		if out, err := l.run(cns, 15*time.Second, b("kumoctl"), mgr, "attach"); err != nil {
			t.Fatalf("attach: %v %s", err, out)
		}
		eventually(t, 60*time.Second, "the replace", func() bool {
			out, err := l.run(cns, 15*time.Second, b("kumostat"), "-m", mgr, "replstat")
			return err == nil && strings.Count(out, "ready") == n
		})
	}
	waitNew(3)
	attach(3)
	// A verifying load through the gateway while 3 more servers join.
	bench := exec.Command("ip", "netns", "exec", cns, b("kumo-bench"), "-s", gw+":11211", "-allow-remote",
		"-c", "8", "-keys", "5000", "-preload", "-verify", "-t", "12s", "-q")
	var bout bytes.Buffer
	bench.Stdout, bench.Stderr = &bout, &bout
	bench.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 4; i <= 6; i++ {
		startServer(i)
	}
	waitNew(6)
	attach(6)
	if err := bench.Wait(); err != nil {
		t.Fatalf("kumo-bench during the scale-out: %v\n%s", err, bout.String())
	}
	// kumo-bench exits 1 on any error or wrong value (-verify).
	t.Logf("load during scale-out:\n%s", bout.String())
	// Per-server gets follow the coordinator shares of the 6-server ring.
	before := cmdGets(t, l, cns, b("kumostat"), mgr)
	out, err := l.run(cns, 60*time.Second, b("kumo-bench"), "-s", gw+":11211", "-allow-remote", "-c", "8",
		"-keys", "5000", "-gets", "1", "-n", "60000", "-q")
	if err != nil {
		t.Fatalf("get load: %v\n%s", err, out)
	}
	after := cmdGets(t, l, cns, b("kumostat"), mgr)
	var nodes []ring.Node
	for _, s := range servers {
		a, err := ring.ParseAddr(s, 19800)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, ring.Node{Addr: a, Active: true})
	}
	shares := map[string]float64{}
	for _, sh := range ring.New(nodes, 1).Shares() {
		shares[sh.Node.Addr.String()] = sh.Coordinator
	}
	var total float64
	for _, s := range servers {
		total += after[s] - before[s]
	}
	for _, s := range servers {
		got := (after[s] - before[s]) / total
		t.Logf("%s: %.3f of the gets, ring share %.3f", s, got, shares[s])
		if math.Abs(got-shares[s]) > 0.05 {
			t.Fatalf("%s served %.3f of the gets, but owns %.3f of the ring", s, got, shares[s])
		}
	}
}

// cmdGets reads every server's cmd_get through kumostat -m.
func cmdGets(t *testing.T, l *netLab, ns, kumostat, mgr string) map[string]float64 {
	out, err := l.run(ns, 15*time.Second, kumostat, "-m", mgr, "cmd_get")
	if err != nil {
		t.Fatalf("kumostat: %v %s", err, out)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		m[strings.TrimSuffix(f[0], ":")] = v
	}
	return m
}
