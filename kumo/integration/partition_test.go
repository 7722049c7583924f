package integration

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/ring"
)

// partitionLab is a cluster spread over network namespaces, for cutting
// links with iptables inside them.
type partitionLab struct {
	*netLab
	bin      string
	mgrs     []string // manager addresses
	mgrNS    []string
	servers  []string // server addresses (host:19800)
	serverNS []string
	gw       string
	gwNS     string
	client   string // client namespace
}

func requireIptables(t *testing.T) {
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables is not installed")
	}
}

func newPartitionLab(t *testing.T, managers, servers int) *partitionLab {
	requireIptables(t)
	l := &partitionLab{netLab: newNetLab(t)}
	var err error
	if l.bin, err = localcluster.BinDir(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < managers; i++ {
		l.mgrs = append(l.mgrs, l.net+strconv.Itoa(1+i))
		l.mgrNS = append(l.mgrNS, l.node(fmt.Sprintf("mgr%d", i+1), 1+i))
	}
	for i := 0; i < managers; i++ {
		args := []string{"-l", l.mgrs[i], "-o", "-"}
		if managers == 2 {
			args = append(args, "-p", l.mgrs[1-i])
		}
		l.start(l.mgrNS[i], fmt.Sprintf("manager-%d", i+1), l.b("kumo-manager"), args...)
	}
	mflags := []string{"-m", l.mgrs[0]}
	if managers == 2 {
		mflags = append(mflags, "-p", l.mgrs[1])
	}
	for i := 1; i <= servers; i++ {
		host := 10 + i
		addr := l.net + strconv.Itoa(host)
		ns := l.node(fmt.Sprintf("s%d", i), host)
		args := append([]string{"-l", addr, "-s", filepath.Join(l.dir, fmt.Sprintf("s%d.kch", i)), "-o", "-"}, mflags...)
		l.start(ns, fmt.Sprintf("server-%d", i), l.b("kumo-server"), args...)
		l.servers = append(l.servers, addr+":19800")
		l.serverNS = append(l.serverNS, ns)
	}
	l.gw = l.net + "5:11211"
	gns := l.node("gw", 5)
	l.gwNS = gns
	l.start(gns, "gateway", l.b("kumo-gateway"), append([]string{"-t", l.gw, "-o", "-"}, mflags...)...)
	l.client = l.node("client", 6)
	for _, s := range l.servers {
		s := s
		eventually(t, 30*time.Second, "server "+s+" at the manager", func() bool { return l.logHas("manager-1", "new node "+s) })
	}
	l.attach(0, servers)
	return l
}

func (l *partitionLab) b(name string) string { return filepath.Join(l.bin, name) }

// attach runs kumoctl attach on manager m and waits until n servers report
// a finished replace.
func (l *partitionLab) attach(m, n int) {
	l.t.Helper()
	if out, err := l.run(l.client, 15*time.Second, l.b("kumoctl"), l.mgrs[m], "attach"); err != nil {
		l.t.Fatalf("attach: %v %s", err, out)
	}
	eventually(l.t, 60*time.Second, "the replace", func() bool {
		out, err := l.run(l.client, 15*time.Second, l.b("kumostat"), "-m", l.mgrs[m], "replstat")
		return err == nil && strings.Count(out, "ready") == n
	})
}

// cut drops all traffic between namespace ns and address addr (both ways,
// at ns); heal removes the rules.
func (l *partitionLab) cut(ns, addr string) {
	l.ip("netns", "exec", ns, "iptables", "-A", "INPUT", "-s", addr, "-j", "DROP")
	l.ip("netns", "exec", ns, "iptables", "-A", "OUTPUT", "-d", addr, "-j", "DROP")
}

func (l *partitionLab) heal(ns string) {
	l.ip("netns", "exec", ns, "iptables", "-F", "INPUT")
	l.ip("netns", "exec", ns, "iptables", "-F", "OUTPUT")
}

// py runs a Python snippet with pymemcache's client c connected to the
// gateway, inside the client namespace, and fails the test on an error.
func (l *partitionLab) py(code string) string {
	l.t.Helper()
	out, err := l.pyAt(l.gw, code)
	if err != nil {
		l.t.Fatalf("python in the client namespace: %v\n%s", err, out)
	}
	return out
}

// pyAt runs a Python snippet with pymemcache's client c connected to the
// gateway at addr, inside the client namespace.
func (l *partitionLab) pyAt(addr, code string) (string, error) {
	host, port, _ := strings.Cut(addr, ":")
	prog := "import sys\nfrom pymemcache.client.base import Client\n" +
		"c = Client(('" + host + "', " + port + "), connect_timeout=5, timeout=20)\n" + code
	return l.run(l.client, 90*time.Second, "/usr/bin/python3", "-c", prog)
}

// secondGateway starts gateway-2 (address host 7) with extra flags and
// waits until it has a hash space; it returns its address and namespace.
func (l *partitionLab) secondGateway(extra ...string) (addr, ns string) {
	addr = l.net + "7:11211"
	ns = l.node("gw2", 7)
	l.start(ns, "gateway-2", l.b("kumo-gateway"), append([]string{"-m", l.mgrs[0], "-t", addr, "-o", "-"}, extra...)...)
	eventually(l.t, 20*time.Second, "the second gateway ready", func() bool { return l.logHas("gateway-2", "connect success") })
	return addr, ns
}

// waitFault waits until the manager lost server i and reports it fault.
func (l *partitionLab) waitFault(i int) {
	l.t.Helper()
	victim := l.servers[i]
	eventually(l.t, 20*time.Second, "the manager to lose the server", func() bool {
		return l.logHas("manager-1", "lost node "+victim)
	})
	eventually(l.t, 10*time.Second, "the manager to mark it fault", func() bool {
		out, err := l.run(l.client, 15*time.Second, l.b("kumoctl"), l.mgrs[0], "status")
		return err == nil && strings.Contains(out, victim+"  (fault)")
	})
}

// deletes sets n keys and deletes every other one, through the gateway.
func (l *partitionLab) setKeys(prefix string, n int) {
	l.py(fmt.Sprintf("for i in range(%d):\n    assert c.set('%s%%d' %% i, b'v', noreply=False)\n", n, prefix))
}

func (l *partitionLab) deleteHalf(prefix string, n int) {
	l.py(fmt.Sprintf("for i in range(0, %d, 2):\n    assert c.delete('%s%%d' %% i, noreply=False)\n", n, prefix))
}

// checkDeleted asserts every deleted key is gone and every other one there.
func (l *partitionLab) checkDeleted(prefix string, n int) {
	l.py(fmt.Sprintf("for i in range(%d):\n    v = c.get('%s%%d' %% i)\n"+
		"    if i %% 2 == 0 and v is not None: sys.exit('deleted key %%d came back' %% i)\n"+
		"    if i %% 2 == 1 and v != b'v': sys.exit('key %%d lost: %%r' %% (i, v))\n", n, prefix))
}

// checkMemory asserts every daemon of the lab is alive with bounded memory.
func (l *partitionLab) checkMemory() {
	l.t.Helper()
	for _, c := range l.procs {
		if c.ProcessState != nil {
			l.t.Fatalf("%v exited: %v", c.Args, c.ProcessState)
		}
		if kb := rss(l.t, c.Process.Pid); kb > 256<<10 {
			l.t.Fatalf("%v uses %d KiB", c.Args, kb)
		}
	}
}

// load starts a verifying kumo-bench run in the client namespace.
func (l *partitionLab) load(d time.Duration) (wait func() string) {
	cmd := exec.Command("ip", "netns", "exec", l.client, l.b("kumo-bench"), "-s", l.gw, "-allow-remote",
		"-c", "8", "-keys", "2000", "-preload", "-verify", "-t", fmt.Sprintf("%.0fs", d.Seconds()), "-q")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	return func() string {
		cmd.Wait()
		return out.String()
	}
}

var wrongLine = regexp.MustCompile(`(?m)^wrong\s+(\d+)`)

// checkLoad asserts that a kumo-bench -verify run saw no wrong value.
func checkLoad(t *testing.T, out string) {
	t.Helper()
	m := wrongLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("kumo-bench output without a wrong line:\n%s", out)
	}
	if m[1] != "0" {
		t.Fatalf("kumo-bench saw %s wrong values:\n%s", m[1], out)
	}
	t.Logf("load:\n%s", out)
}

// Ensure that a server cut off from the manager while the gateway still
// reaches it loses no acknowledged write and serves no stale value: the
// manager marks it fault, the others fence it off, and after the partition
// heals it rejoins through attach and is brought up to date.
func TestPartitionServerFromManager(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("partition test in -short mode")
	}
	requirePython(t, "pymemcache", "python3-pymemcache")
	l := newPartitionLab(t, 1, 3)
	l.setKeys("del", 200)
	wait := l.load(14 * time.Second)
	victim := l.servers[2]
	l.cut(l.serverNS[2], l.mgrs[0])
	eventually(t, 20*time.Second, "the manager to mark the server fault", func() bool {
		return l.logHas("manager-1", "lost node "+victim)
	})
	// Deletes the cut-off server misses: they must not come back.
	l.deleteHalf("del", 200)
	l.heal(l.serverNS[2])
	eventually(t, 30*time.Second, "the server to come back as a newcomer", func() bool {
		out, err := l.run(l.client, 15*time.Second, l.b("kumoctl"), l.mgrs[0], "status")
		return err == nil && strings.Contains(out, "not attached node:\n  "+victim)
	})
	l.attach(0, 3)
	checkLoad(t, wait())
	l.checkDeleted("del", 200)
	l.checkMemory()
	items := l.items(0)
	for s, n := range items {
		if n != items[l.servers[0]] {
			t.Fatalf("item counts differ after the rejoin: %v (%s)", items, s)
		}
	}
}

// items reads every server's item count through manager m.
func (l *partitionLab) items(m int) map[string]string {
	out, err := l.run(l.client, 15*time.Second, l.b("kumostat"), "-m", l.mgrs[m], "items")
	if err != nil {
		l.t.Fatalf("kumostat: %v %s", err, out)
	}
	r := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			r[strings.TrimSuffix(f[0], ":")] = f[1]
		}
	}
	if len(r) != len(l.servers) {
		l.t.Fatalf("kumostat items: %q", out)
	}
	return r
}

// Ensure that the two managers of a pair cut off from each other (both
// alive) keep the cluster serving correctly, and agree again once the
// partition heals.
func TestPartitionBetweenManagers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("partition test in -short mode")
	}
	requirePython(t, "pymemcache", "python3-pymemcache")
	l := newPartitionLab(t, 2, 3)
	l.setKeys("del", 200)
	wait := l.load(10 * time.Second)
	l.cut(l.mgrNS[0], l.mgrs[1])
	l.deleteHalf("del", 200)
	eventually(t, 30*time.Second, "some time under the partition", func() bool {
		out, err := l.run(l.client, 15*time.Second, l.b("kumostat"), "-m", l.mgrs[1], "hscheck")
		return err == nil && strings.Count(out, "true") == 3
	})
	checkLoad(t, wait())
	l.heal(l.mgrNS[0])
	eventually(t, 30*time.Second, "the managers to agree", func() bool {
		a, err1 := l.run(l.client, 15*time.Second, l.b("kumoctl"), l.mgrs[0], "status")
		b, err2 := l.run(l.client, 15*time.Second, l.b("kumoctl"), l.mgrs[1], "status")
		return err1 == nil && err2 == nil && a == b
	})
	l.checkDeleted("del", 200)
	l.checkMemory()
}

// Ensure that a server cut off from the manager while a replace runs, then
// healed, leaves no acknowledged write lost: the replace is abandoned, and
// the next attach finishes the job with every server up to date.
func TestPartitionDuringReplace(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("partition test in -short mode")
	}
	requirePython(t, "pymemcache", "python3-pymemcache")
	l := newPartitionLab(t, 1, 3)
	l.setKeys("del", 200)
	// Data for the replace to move, then a verifying load.
	if out, err := l.run(l.client, 60*time.Second, l.b("kumo-bench"), "-s", l.gw, "-allow-remote",
		"-keys", "20000", "-preload", "-n", "1", "-q"); err != nil {
		t.Fatalf("preload: %v %s", err, out)
	}
	wait := l.load(15 * time.Second)
	host := 14
	addr := l.net + strconv.Itoa(host)
	ns := l.node("s4", host)
	l.start(ns, "server-4", l.b("kumo-server"), "-l", addr, "-s", filepath.Join(l.dir, "s4.kch"), "-o", "-", "-m", l.mgrs[0])
	l.servers = append(l.servers, addr+":19800")
	l.serverNS = append(l.serverNS, ns)
	eventually(t, 30*time.Second, "server 4 at the manager", func() bool { return l.logHas("manager-1", "new node "+addr) })
	// Cut server 2 off and start the replace before the manager notices:
	// the replace cannot finish with it, the loss aborts it, and the next
	// attach must finish the job.
	victim := l.servers[1]
	l.cut(l.serverNS[1], l.mgrs[0])
	if out, err := l.run(l.client, 15*time.Second, l.b("kumoctl"), l.mgrs[0], "attach"); err != nil {
		t.Fatalf("attach: %v %s", err, out)
	}
	eventually(t, 20*time.Second, "the manager to lose the server", func() bool {
		return l.logHas("manager-1", "lost node "+victim)
	})
	eventually(t, 5*time.Second, "the running replace to be aborted", func() bool {
		return l.logHas("manager-1", "replace aborted")
	})
	l.deleteHalf("del", 200)
	l.heal(l.serverNS[1])
	eventually(t, 30*time.Second, "the server back as a newcomer", func() bool {
		out, err := l.run(l.client, 15*time.Second, l.b("kumoctl"), l.mgrs[0], "status")
		return err == nil && strings.Contains(out, "not attached node:\n  "+victim)
	})
	l.attach(0, 4)
	checkLoad(t, wait())
	// Every key has 3 copies over 4 servers: the item counts add up.
	total := 0
	for _, v := range l.items(0) {
		n, _ := strconv.Atoi(v)
		total += n
	}
	if total < 3*20000 {
		t.Fatalf("%d records over the servers, want at least 3 × 20000", total)
	}
	l.checkDeleted("del", 200)
	l.checkMemory()
}

// Ensure the fencing rule: a server cut off from the manager keeps its old
// write hash space until it learns the newer one from its peers, and a
// second gateway that reaches only it still routes writes to it. Those
// writes must not be acknowledged (the cut-off server refuses them once it
// learned it is fault, and before that the other owners, which know the
// newer hash space, refuse its replication), while the current coordinator,
// reached through the up-to-date gateway, takes writes to the same keys.
func TestFencingStaleCoordinator(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("partition test in -short mode")
	}
	requirePython(t, "pymemcache", "python3-pymemcache")
	l := newPartitionLab(t, 1, 3)
	gw2, g2ns := l.secondGateway("--retry-timeout", "2")
	keys := l.victimKeys("fence", 2, 8)
	l.cut(l.serverNS[2], l.mgrs[0])
	// The second gateway reaches only the cut-off server: it cannot learn
	// the newer hash space from the others (nor relay through them).
	l.cut(g2ns, l.mgrs[0])
	l.cut(g2ns, ipOf(l.servers[0]))
	l.cut(g2ns, ipOf(l.servers[1]))
	l.waitFault(2)
	klist := "['" + strings.Join(keys, "','") + "']"
	prog := "import threading\nkeys = " + klist + "\nacked = []\n" +
		"def w(k):\n    try:\n        if c.set(k, b'stale', noreply=False): acked.append(k)\n    except Exception as e:\n        pass\n" +
		"ts = [threading.Thread(target=w, args=(k,)) for k in keys]\n[t.start() for t in ts]\n[t.join() for t in ts]\n" +
		"print('acked', acked)\nsys.exit(1 if acked else 0)\n"
	if out, err := l.pyAt(gw2, prog); err != nil {
		t.Fatalf("the stale coordinator acknowledged writes: %v\n%s", err, out)
	}
	l.py("keys = " + klist + "\nfor k in keys:\n    assert c.set(k, b'fresh', noreply=False)\n" +
		"for k in keys:\n    v = c.get(k)\n    if v != b'fresh': sys.exit('%s: %r' % (k, v))\n")
	l.checkMemory()
}

// ipOf returns the host part of host:port.
func ipOf(addr string) string {
	host, _, _ := strings.Cut(addr, ":")
	return host
}

// victimKeys returns n keys whose coordinator (and first read owner) is
// server i of the lab's 3-server hash space.
func (l *partitionLab) victimKeys(prefix string, i, n int) []string {
	var nodes []ring.Node
	for _, s := range l.servers {
		a, _ := ring.ParseAddr(s, 19800)
		nodes = append(nodes, ring.Node{Addr: a, Active: true})
	}
	hs := ring.New(nodes, 1)
	var keys []string
	for k := 0; len(keys) < n; k++ {
		key := fmt.Sprintf("%s%d", prefix, k)
		if co, _ := hs.Lookup([]byte(key)).Coordinator(); co.Addr == nodes[i].Addr {
			keys = append(keys, key)
		}
	}
	return keys
}

// Ensure that a gateway cut off from one server, which the manager and the
// other servers still reach, keeps serving every key: reads fail over to
// the other owners, writes that server coordinates are relayed through
// another owner, and no acknowledged write is lost or deleted key revived.
func TestPartitionGatewayFromServer(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("partition test in -short mode")
	}
	requirePython(t, "pymemcache", "python3-pymemcache")
	l := newPartitionLab(t, 1, 3)
	l.setKeys("del", 200)
	keys := l.victimKeys("cut", 2, 40)
	klist := "['" + strings.Join(keys, "','") + "']"
	l.py("for k in " + klist + ":\n    assert c.set(k, b'before', noreply=False)\n")
	wait := l.load(15 * time.Second)
	l.cut(l.gwNS, ipOf(l.servers[2]))
	// Keys the cut-off server coordinates: written through the gateway
	// (relayed), read back (from the other owners), deleted.
	l.py("keys = " + klist + "\nfor k in keys:\n    assert c.set(k, b'during', noreply=False)\n" +
		"for k in keys:\n    v = c.get(k)\n    if v != b'during': sys.exit('%s: %r' % (k, v))\n" +
		"for k in keys[:10]:\n    assert c.delete(k, noreply=False)\n")
	l.deleteHalf("del", 200)
	l.checkDeleted("del", 200)
	if !l.logHas("manager-1", "new node") || l.logHas("manager-1", "lost node") {
		t.Fatal("the manager lost a server: the partition was not between the gateway and the server alone")
	}
	l.heal(l.gwNS)
	checkLoad(t, wait())
	l.py("keys = " + klist + "\nfor k in keys[:10]:\n    v = c.get(k)\n    if v is not None: sys.exit('deleted %s came back: %r' % (k, v))\n" +
		"for k in keys[10:]:\n    v = c.get(k)\n    if v != b'during': sys.exit('%s: %r' % (k, v))\n")
	l.checkDeleted("del", 200)
	l.checkMemory()
}

// Ensure that a gateway cut off from the managers does not serve stale
// values from a server the managers marked fault: it learns the newer hash
// space from the servers it still reaches (and the fault server, cut off
// from the managers too, learns it from its peers and stops serving).
func TestPartitionStaleGateway(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("partition test in -short mode")
	}
	requirePython(t, "pymemcache", "python3-pymemcache")
	l := newPartitionLab(t, 1, 3)
	gw2, g2ns := l.secondGateway()
	keys := l.victimKeys("stale", 2, 20)
	klist := "['" + strings.Join(keys, "','") + "']"
	l.py("for k in " + klist + ":\n    assert c.set(k, b'old', noreply=False)\n")
	l.cut(l.serverNS[2], l.mgrs[0])
	l.cut(g2ns, l.mgrs[0])
	l.waitFault(2)
	// New values through the up-to-date gateway; the fault server misses them.
	l.py("for k in " + klist + ":\n    assert c.set(k, b'new', noreply=False)\n")
	eventually(t, 20*time.Second, "the cut-off gateway to learn the hash space from a server", func() bool {
		return l.logHas("gateway-2", "hash space learned from server")
	})
	eventually(t, 20*time.Second, "the fault server to learn it from its peers", func() bool {
		return l.logHas("server-3", "hash space learned from server")
	})
	prog := "for k in " + klist + ":\n    v = c.get(k)\n    if v != b'new': sys.exit('stale read %s: %r' % (k, v))\n"
	if out, err := l.pyAt(gw2, prog); err != nil {
		t.Fatalf("through the gateway cut off from the manager: %v\n%s", err, out)
	}
	l.heal(l.serverNS[2])
	l.heal(g2ns)
	l.checkMemory()
}
