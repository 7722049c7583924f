package integration

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// The rebalancing and recovery scenarios of kumofs's own regression suite
// (rt/01–09), each under a background load of writers, deleters and
// readers. Each ends by checking: no acknowledged write lost, no deleted key
// resurrected, every key on exactly its current owners (no leftovers after
// the delete phase), item counts consistent. KUMO_CHAOS_LOOPS sets the
// number of loops (make chaos runs 20); the default is a short form.

func loops(def int) int {
	if n, err := strconv.Atoi(os.Getenv("KUMO_CHAOS_LOOPS")); err == nil && n > 0 {
		return n
	}
	return def
}

// rload writes, overwrites and deletes keys through a gateway and reads
// them back, remembering what was acknowledged.
type rload struct {
	mu      sync.Mutex
	acked   map[string]int  // key -> latest acknowledged version
	deleted map[string]bool // keys whose delete was acknowledged; never set again
	bad     []string
	writes  atomic.Int64
	errors  atomic.Int64
}

func (l *rload) fail(format string, args ...any) {
	l.mu.Lock()
	if len(l.bad) < 20 {
		l.bad = append(l.bad, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
	l.mu.Unlock()
}

func (l *rload) start(t *testing.T, addr string, writers int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(2)
		go func(w int) { // writer and deleter
			defer wg.Done()
			c := dial(t, addr)
			for i := 1; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				k := fmt.Sprintf("s%d-%d", w, i%150)
				if r := c.set(k, strconv.Itoa(i)); r != "STORED\r\n" {
					l.errors.Add(1)
					l.fail("set %s: %q", k, r)
					continue
				}
				l.writes.Add(1)
				l.mu.Lock()
				l.acked[k] = i
				l.mu.Unlock()
				if i%7 == 0 {
					d := fmt.Sprintf("d%d-%d", w, i)
					if r := c.set(d, "x"); r != "STORED\r\n" {
						l.errors.Add(1)
						l.fail("set %s: %q", d, r)
						continue
					}
					if r := c.cmd("delete " + d + "\r\n"); r != "DELETED\r\n" {
						l.errors.Add(1)
						l.fail("delete %s: %q", d, r)
						continue
					}
					l.mu.Lock()
					l.deleted[d] = true
					l.mu.Unlock()
				}
			}
		}(w)
		go func(w int) { // reader
			defer wg.Done()
			c := dial(t, addr)
			rnd := rand.New(rand.NewSource(int64(w)))
			for {
				select {
				case <-done:
					return
				default:
				}
				k := fmt.Sprintf("s%d-%d", rnd.Intn(writers), rnd.Intn(150))
				l.mu.Lock()
				want, ok := l.acked[k]
				l.mu.Unlock()
				if !ok {
					continue
				}
				c.send("get " + k + "\r\n")
				line := c.line()
				if !strings.HasPrefix(line, "VALUE ") {
					l.errors.Add(1)
					l.fail("get %s: %q, want version %d", k, line, want)
					continue
				}
				v, _ := strconv.Atoi(strings.TrimSuffix(c.line(), "\r\n"))
				c.line()
				if v < want {
					l.fail("get %s: version %d older than acknowledged %d", k, v, want)
				}
			}
		}(w)
	}
	return func() { close(done); wg.Wait() }
}

// check reads every key back through the gateway.
func (l *rload) check(t *testing.T, addr string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) > 0 {
		t.Fatalf("during the load: %d errors: %v", l.errors.Load(), l.bad)
	}
	c := dial(t, addr)
	for k, want := range l.acked {
		v, ok := c.get(k)
		n, _ := strconv.Atoi(v)
		if !ok || n < want {
			t.Fatalf("acknowledged %s version %d lost: got %q (hit %v)", k, want, v, ok)
		}
	}
	for k := range l.deleted {
		if v, ok := c.get(k); ok {
			t.Fatalf("deleted key %s came back: %q", k, v)
		}
	}
	t.Logf("%d writes, %d deleted keys checked", l.writes.Load(), len(l.deleted))
}

// whs fetches the manager's write hash space (GetNodesInfo).
func whs(t *testing.T, mgr string) *ring.HashSpace {
	t.Helper()
	c := rpc.Dial(mgr, rpc.Options{})
	defer c.Close()
	var res rpc.Result
	var err error
	eventually(t, 10*time.Second, "GetNodesInfo", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		res, err = c.Call(ctx, wire.MgrGetNodesInfo, func(b []byte) []byte { return msgpack.AppendArrayHeader(b, 0) })
		return err == nil
	})
	defer res.Release()
	_, p, err := msgpack.ReadArrayHeader(res.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	hs, _, err := ring.ReadSeed(p)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// checkPlacement asserts that every key of the load is stored on exactly
// its active owners: owners hold the latest version (or the tombstone),
// other live servers hold nothing.
func (l *rload) checkPlacement(t *testing.T, c *localcluster.Cluster, managers int) {
	t.Helper()
	// A restarted manager adopts its partner's hash space shortly after
	// it reconnects: wait until all managers agree.
	var hs *ring.HashSpace
	eventually(t, 20*time.Second, "managers agreeing on the hash space", func() bool {
		hs = whs(t, c.Manager(0))
		for m := 1; m < managers; m++ {
			o := whs(t, c.Manager(m))
			if o.Clock() != hs.Clock() || !o.Equal(hs) {
				return false
			}
		}
		return !hs.Empty()
	})
	addrs := map[string]bool{}
	for i := 0; i < c.NumServers(); i++ {
		if p := c.Server(i); p.Alive() {
			addrs[p.Addr] = true
		}
	}
	l.mu.Lock()
	keys := make([]string, 0, len(l.acked)+len(l.deleted))
	for k := range l.acked {
		keys = append(keys, k)
	}
	for k := range l.deleted {
		keys = append(keys, k)
	}
	l.mu.Unlock()
	conns := map[string]*rpc.Client{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for a := range addrs {
		conns[a] = rpc.Dial(a, rpc.Options{})
	}
	for _, k := range keys {
		o := hs.Lookup([]byte(k))
		owner := map[string]bool{}
		for i := 0; i < o.Len(); i++ {
			if n := o.At(i); n.Active {
				owner[n.Addr.String()] = true
			}
		}
		for a, cl := range conns {
			present := rawPresent(t, cl, k)
			if owner[a] && !present {
				t.Fatalf("key %s missing on its owner %s", k, a)
			}
			if !owner[a] && present {
				t.Fatalf("key %s left over on %s, which does not own it", k, a)
			}
		}
	}
}

// rawPresent reports whether a server holds any record (value or
// tombstone) of key.
func rawPresent(t *testing.T, c *rpc.Client, key string) bool {
	_, ok := getRaw(t, c, key)
	return ok
}

// restartAndAttach restarts killed server i, attaches it through manager m
// and waits for the replace to finish.
func restartAndAttach(t *testing.T, c *localcluster.Cluster, m int, servers ...int) {
	t.Helper()
	for _, i := range servers {
		if err := c.RestartServer(i); err != nil {
			t.Fatalf("restart %s: %v", c.Server(i), err)
		}
	}
	attach(t, c, m)
}

// attach runs kumoctl attach against manager m and waits for that
// manager's "replace finished".
func attach(t *testing.T, c *localcluster.Cluster, m int) {
	t.Helper()
	mp := c.ManagerProc(m)
	off := mp.LogSize()
	if out, err := ctlAt(t, c, m, "attach"); err != nil {
		t.Fatalf("attach: %v %s", err, out)
	}
	if err := mp.WaitLogAfter(off, "replace finished", 60*time.Second); err != nil {
		t.Fatalf("waiting for the replace: %v", err)
	}
}

// ctlAt runs kumoctl against manager m.
func ctlAt(t *testing.T, c *localcluster.Cluster, m int, args ...string) (string, error) {
	dir, err := localcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "kumoctl"), append([]string{c.Manager(m)}, args...)...).CombinedOutput()
	return string(out), err
}

// kill kills servers and waits until the first live manager saw them lost.
func kill(t *testing.T, c *localcluster.Cluster, m int, servers ...int) {
	t.Helper()
	mp := c.ManagerProc(m)
	off := mp.LogSize()
	for _, i := range servers {
		if err := c.KillServer(i); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range servers {
		if err := mp.WaitLogAfter(off, "lost node "+c.Server(i).Addr, 20*time.Second); err != nil {
			t.Fatalf("waiting for lost node: %v", err)
		}
	}
}

// restartManager kills manager m and starts it again; it waits until the
// pair is connected again.
func restartManager(t *testing.T, c *localcluster.Cluster, m int) {
	t.Helper()
	mp := c.ManagerProc(m)
	if err := mp.Kill(); err != nil {
		t.Fatal(err)
	}
	startManager(t, c, m)
}

func startManager(t *testing.T, c *localcluster.Cluster, m int) {
	t.Helper()
	mp := c.ManagerProc(m)
	off := mp.LogSize()
	if err := mp.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := mp.WaitLogAfter(off, "partner connected", 20*time.Second); err != nil {
		t.Fatalf("restarted manager: %v", err)
	}
	// As an operator would: wait until the restarted manager holds the
	// partner's hash space before touching anything else.
	eventually(t, 20*time.Second, "the restarted manager syncing", func() bool {
		a, b := whs(t, c.Manager(0)), whs(t, c.Manager(1))
		return !a.Empty() && a.Clock() == b.Clock() && a.Equal(b)
	})
}

type scenario struct {
	name     string
	servers  int
	managers int
	loops    int
	body     func(t *testing.T, c *localcluster.Cluster, rnd *rand.Rand)
}

var scenarios = []scenario{
	{"01_mgr1_kill_1_srv", 3, 1, 2, func(t *testing.T, c *localcluster.Cluster, rnd *rand.Rand) {
		i := rnd.Intn(c.NumServers())
		kill(t, c, 0, i)
		restartAndAttach(t, c, 0, i)
	}},
	{"02_mgr2_kill_1_mgr", 3, 2, 2, func(t *testing.T, c *localcluster.Cluster, rnd *rand.Rand) {
		restartManager(t, c, rnd.Intn(2))
	}},
	{"03_mgr1_kill_2_srvs", 3, 1, 1, func(t *testing.T, c *localcluster.Cluster, rnd *rand.Rand) {
		p := rnd.Perm(c.NumServers())
		kill(t, c, 0, p[0], p[1])
		restartAndAttach(t, c, 0, p[0])
		restartAndAttach(t, c, 0, p[1])
	}},
	{"04_mgr2_kill_2_srvs", 3, 2, 1, func(t *testing.T, c *localcluster.Cluster, rnd *rand.Rand) {
		p := rnd.Perm(c.NumServers())
		kill(t, c, 0, p[0], p[1])
		restartAndAttach(t, c, 0, p[0])
		restartAndAttach(t, c, 1, p[1])
	}},
	{"05_mgr2_kill_1_srv_1_mgr", 3, 2, 1, func(t *testing.T, c *localcluster.Cluster, rnd *rand.Rand) {
		i := rnd.Intn(c.NumServers())
		if err := c.ManagerProc(1).Kill(); err != nil {
			t.Fatal(err)
		}
		kill(t, c, 0, i)
		startManager(t, c, 1)
		restartAndAttach(t, c, 0, i)
	}},
	{"06_mgr2_kill_1_mgr_1_srv", 3, 2, 1, func(t *testing.T, c *localcluster.Cluster, rnd *rand.Rand) {
		i := rnd.Intn(c.NumServers())
		kill(t, c, 0, i)
		if err := c.ManagerProc(1).Kill(); err != nil {
			t.Fatal(err)
		}
		restartAndAttach(t, c, 0, i)
		startManager(t, c, 1)
	}},
	{"07_mgr2_kill_2_srvs_while_replacing", 3, 2, 1, killWhileReplacing},
	{"09_cas", 3, 1, 2, casAcrossRestarts},
	{"08_mgr2_kill_2_srvs_while_replacing2", 6, 2, 1, killWhileReplacing},
}

// killWhileReplacing kills server A, restarts and attaches it, and kills
// server B while that replace runs; a second attach must finish the job.
func killWhileReplacing(t *testing.T, c *localcluster.Cluster, rnd *rand.Rand) {
	p := rnd.Perm(c.NumServers())
	a, b := p[0], p[1]
	kill(t, c, 0, a)
	if err := c.RestartServer(a); err != nil {
		t.Fatal(err)
	}
	mp := c.ManagerProc(0)
	off := mp.LogSize()
	if out, err := ctlAt(t, c, 0, "attach"); err != nil {
		t.Fatalf("attach: %v %s", err, out)
	}
	if err := mp.WaitLogAfter(off, "start replace copy", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	kill(t, c, 0, b)
	restartAndAttach(t, c, 0, b)
}

// casAcrossRestarts is rt/09_cas: inside an outer gets/cas, an inner
// gets/cas on the same key must succeed and the outer cas then answer
// EXISTS, for every key; then a random server restarts and is attached.
func casAcrossRestarts(t *testing.T, c *localcluster.Cluster, rnd *rand.Rand) {
	m := dial(t, c.Gateway())
	for k := 0; k < 60; k++ {
		key := fmt.Sprintf("cas-%d", k)
		if _, _, ok := m.gets(key); !ok {
			if r := m.set(key, "0"); r != "STORED\r\n" {
				t.Fatalf("set %s: %q", key, r)
			}
		}
		_, outer, ok := m.gets(key)
		if !ok {
			t.Fatalf("gets %s: miss", key)
		}
		_, inner, ok := m.gets(key)
		if !ok {
			t.Fatalf("gets %s: miss", key)
		}
		if r := m.cmd(fmt.Sprintf("cas %s 0 0 5 %d\r\ninner\r\n", key, inner)); r != "STORED\r\n" {
			t.Fatalf("inner cas %s: %q", key, r)
		}
		if r := m.cmd(fmt.Sprintf("cas %s 0 0 5 %d\r\nouter\r\n", key, outer)); r != "EXISTS\r\n" {
			t.Fatalf("outer cas %s: %q", key, r)
		}
	}
	i := rnd.Intn(c.NumServers())
	kill(t, c, 0, i)
	restartAndAttach(t, c, 0, i)
}

// Ensure that attaching a 4th server to a loaded 3-server cluster moves only
// the keys whose owners change (about 1/4 of the copies), measured.
func TestAttachFourthServer(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	m := dial(t, c.Gateway())
	const n = 2000
	for i := 0; i < n; i++ {
		if r := m.set(fmt.Sprintf("k%d", i), strconv.Itoa(i)); r != "STORED\r\n" {
			t.Fatalf("set: %q", r)
		}
	}
	before := whs(t, c.Manager(0))
	p, err := c.AddServer()
	if err != nil {
		t.Fatal(err)
	}
	attach(t, c, 0)
	after := whs(t, c.Manager(0))
	moved := 0 // keys with a new owner
	for i := 0; i < n; i++ {
		k := []byte(fmt.Sprintf("k%d", i))
		if before.Lookup(k).Contains(p2a(t, p.Addr)) || !after.Lookup(k).Contains(p2a(t, p.Addr)) {
			continue
		}
		moved++
	}
	frac := float64(moved) / n
	t.Logf("attach of a 4th server: %d of %d keys (%.1f%%) gained the new owner", moved, n, 100*frac)
	if frac > 0.9 || frac < 0.6 {
		// With 4 servers each owns ~3/4 of the keys; the copies moved are
		// moved/3n of all copies. The share depends on where the servers'
		// (random) ports put their virtual nodes: over 300 random port
		// sets it ranged 0.66-0.84 (p1 0.68, p99 0.83), and a CI run saw
		// 0.855, so the bounds only catch a broken ring.
		t.Fatalf("unexpected share of keys on the new server: %.2f", frac)
	}
	copiesMoved := float64(moved) / (3 * n)
	t.Logf("copies moved: %.1f%% of all copies", 100*copiesMoved)
	if copiesMoved > 0.40 {
		t.Fatalf("%.1f%% of the copies moved, want at most 40%%", 100*copiesMoved)
	}
	for i := 0; i < n; i++ {
		if v, ok := m.get(fmt.Sprintf("k%d", i)); !ok || v != strconv.Itoa(i) {
			t.Fatalf("k%d after attach: %q %v", i, v, ok)
		}
	}
	l := &rload{acked: map[string]int{}, deleted: map[string]bool{}}
	for i := 0; i < n; i++ {
		l.acked[fmt.Sprintf("k%d", i)] = i
	}
	l.checkPlacement(t, c, 1)
}

func p2a(t *testing.T, s string) ring.Addr {
	a, err := ring.ParseAddr(s, 19800)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios {
		sc := sc
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			if testing.Short() && sc.servers > 3 {
				t.Skip("6-server scenario in -short mode")
			}
			opts := localcluster.Options{Servers: sc.servers, Managers: sc.managers}
			if d := os.Getenv("KUMO_CHAOS_DIR"); d != "" {
				// Keep every daemon's debug log there for a post-mortem.
				opts.Dir, opts.Verbose = filepath.Join(d, sc.name), true
			}
			c := localcluster.StartT(t, opts)
			l := &rload{acked: map[string]int{}, deleted: map[string]bool{}}
			stop := l.start(t, c.Gateway(), 2)
			rnd := rand.New(rand.NewSource(time.Now().UnixNano()))
			eventually(t, 20*time.Second, "initial load", func() bool { return l.writes.Load() > 200 })
			for i := 0; i < loops(sc.loops); i++ {
				sc.body(t, c, rnd)
			}
			before := l.writes.Load()
			eventually(t, 20*time.Second, "load after the last step", func() bool { return l.writes.Load() > before+100 })
			stop()
			l.check(t, c.Gateway())
			l.checkPlacement(t, c, sc.managers)
		})
	}
}

// Ensure that a key deleted while a server was down does not come back
// when that server returns after the tombstones' garbage time (-gX): the
// server discards its old data on start, with a log line, and no push of
// an old copy (a repair after the server's connections closed, retried
// until it came back) reaches it late. Sets through the coordinators make
// the servers repair after the kill: they came on the dead server's
// connections.
func TestDeletedKeyStaysDeletedAfterGarbageTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
	}{{"direct sets", nil}, {"sets through coordinators", []string{"--no-direct-sets"}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testDeletedKeyStaysDeleted(t, tc.args)
		})
	}
}

func testDeletedKeyStaysDeleted(t *testing.T, gatewayArgs []string) {
	c := localcluster.StartT(t, localcluster.Options{ExtraServerArgs: []string{"-gX", "2"}, ExtraGatewayArgs: gatewayArgs})
	m := dial(t, c.Gateway())
	for i := 0; i < 50; i++ {
		if r := m.set(fmt.Sprintf("g%d", i), "v"); r != "STORED\r\n" {
			t.Fatal(r)
		}
	}
	kill(t, c, 0, 0)
	for i := 0; i < 50; i += 2 {
		if r := m.cmd(fmt.Sprintf("delete g%d\r\n", i)); r != "DELETED\r\n" {
			t.Fatalf("delete: %q", r)
		}
	}
	// Let the dead server's data age past -gX; the others purge their
	// tombstones meanwhile.
	p := c.Server(0)
	fi0 := time.Now()
	eventually(t, 10*time.Second, "the garbage time to pass", func() bool { return time.Since(fi0) > 3*time.Second })
	off := p.LogSize()
	restartAndAttach(t, c, 0, 0)
	if err := p.WaitLogAfter(off, "discarding", 5*time.Second); err != nil {
		t.Fatalf("no discard log line: %v", err)
	}
	for i := 0; i < 50; i++ {
		v, ok := m.get(fmt.Sprintf("g%d", i))
		if i%2 == 0 && ok {
			t.Fatalf("deleted g%d came back: %q", i, v)
		}
		if i%2 == 1 && (!ok || v != "v") {
			t.Fatalf("g%d lost: %q %v", i, v, ok)
		}
	}
	l := &rload{acked: map[string]int{}, deleted: map[string]bool{}}
	for i := 1; i < 50; i += 2 {
		l.acked[fmt.Sprintf("g%d", i)] = 0
	}
	l.checkPlacement(t, c, 1)
}

// Ensure that a cluster that took no writes for longer than the garbage
// time keeps its data when every server is killed and restarted: a server
// was away only as long as it was down, not since its last write (it used
// to discard its whole store, and with every server doing so the cluster
// lost every key).
func TestIdleClusterRestartKeepsData(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{ExtraServerArgs: []string{"-gX", "4"}})
	m := dial(t, c.Gateway())
	for i := 0; i < 50; i++ {
		if r := m.set(fmt.Sprintf("idle%d", i), "v"); r != "STORED\r\n" {
			t.Fatal(r)
		}
	}
	idle := time.Now()
	eventually(t, 20*time.Second, "the cluster to idle past -gX", func() bool { return time.Since(idle) > 6*time.Second })
	all := []int{0, 1, 2}
	offs := make([]int64, len(all))
	for _, i := range all {
		offs[i] = c.Server(i).LogSize()
	}
	kill(t, c, 0, all...)
	restartAndAttach(t, c, 0, all...)
	for _, i := range all {
		if err := c.Server(i).WaitLogAfter(offs[i], "discarding", 10*time.Millisecond); err == nil {
			t.Fatalf("%s discarded its store after an idle %v", c.Server(i).Addr, time.Since(idle).Round(time.Second))
		}
	}
	m = dial(t, c.Gateway())
	for i := 0; i < 50; i++ {
		if v, ok := m.get(fmt.Sprintf("idle%d", i)); !ok || v != "v" {
			t.Fatalf("idle%d after the restart: %q %v", i, v, ok)
		}
	}
}

// Ensure that when every owner of a key was fault before an attach (one
// server failed, the writes went on without it, then the others went down
// too), the attach brings the stale copies up to date: the replace used to
// copy nothing, as no owner had been active, and reads of the server that
// missed the writes returned the old values.
func TestAllOwnersFaultThenAttach(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	m := dial(t, c.Gateway())
	const n = 60
	for i := 0; i < n; i++ {
		if r := m.set(fmt.Sprintf("af%d", i), "v1"); r != "STORED\r\n" {
			t.Fatal(r)
		}
	}
	kill(t, c, 0, 0)
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("af%d", i)
		if r := m.set(k, "v2"); r != "STORED\r\n" {
			t.Fatalf("set %s with a server down: %q", k, r)
		}
		if i%3 == 0 {
			if r := m.cmd("delete " + k + "\r\n"); r != "DELETED\r\n" {
				t.Fatalf("delete %s: %q", k, r)
			}
		}
	}
	kill(t, c, 0, 1, 2)
	restartAndAttach(t, c, 0, 0, 1, 2)
	m = dial(t, c.Gateway())
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("af%d", i)
		v, ok := m.get(k)
		if i%3 == 0 && ok {
			t.Fatalf("deleted %s came back: %q", k, v)
		}
		if i%3 != 0 && (!ok || v != "v2") {
			t.Fatalf("%s after the attach: %q %v, want v2", k, v, ok)
		}
	}
}

// Ensure that the opt-in finer placement (--virtual-nodes on the manager)
// reaches every node through the hash space: keys land exactly on the
// owners of the 1024-virtual-node ring, also after a 4th server joins.
func TestFinerPlacement(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{ExtraManagerArgs: []string{"--virtual-nodes", "1024"}})
	if n := whs(t, c.Manager(0)).VirtualNodesPerServer(); n != 1024 {
		t.Fatalf("hash space has %d virtual nodes per server, want 1024", n)
	}
	m := dial(t, c.Gateway())
	l := &rload{acked: map[string]int{}, deleted: map[string]bool{}}
	for i := 0; i < 500; i++ {
		k := fmt.Sprintf("f%d", i)
		if r := m.set(k, strconv.Itoa(i)); r != "STORED\r\n" {
			t.Fatal(r)
		}
		l.acked[k] = i
	}
	if _, err := c.AddServer(); err != nil {
		t.Fatal(err)
	}
	attach(t, c, 0)
	l.check(t, c.Gateway())
	l.checkPlacement(t, c, 1)
}

// Ensure that with both managers of a pair down, servers and gateways keep
// serving with the hash space they have, and that restarted managers
// recover the cluster with kumoctl attach (kumofs's documented procedure).
func TestBothManagersDown(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{Managers: 2})
	m := dial(t, c.Gateway())
	for i := 0; i < 100; i++ {
		if r := m.set(fmt.Sprintf("bm%d", i), "1"); r != "STORED\r\n" {
			t.Fatal(r)
		}
	}
	for i := 0; i < 2; i++ {
		if err := c.ManagerProc(i).Kill(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		k := fmt.Sprintf("bm%d", i)
		if r := m.set(k, "2"); r != "STORED\r\n" {
			t.Fatalf("set %s without managers: %q", k, r)
		}
		if v, ok := m.get(k); !ok || v != "2" {
			t.Fatalf("get %s without managers: %q %v", k, v, ok)
		}
	}
	for i := 0; i < 2; i++ {
		if err := c.ManagerProc(i).Restart(); err != nil {
			t.Fatal(err)
		}
	}
	// Every server reconnects and shows up as a newcomer.
	for i := 0; i < c.NumServers(); i++ {
		if err := c.ManagerProc(0).WaitLog("new node "+c.Server(i).Addr, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	attach(t, c, 0)
	l := &rload{acked: map[string]int{}, deleted: map[string]bool{}}
	for i := 0; i < 100; i++ {
		k := fmt.Sprintf("bm%d", i)
		if r := m.set(k, "3"); r != "STORED\r\n" {
			t.Fatalf("set %s after recovery: %q", k, r)
		}
		l.acked[k] = 3
	}
	l.check(t, c.Gateway())
	l.checkPlacement(t, c, 2)
}

// Ensure that with -a the manager detaches a dead server and attaches a
// returning one by itself, -Rs seconds after the last change, rebalancing
// each time, while every acknowledged write stays readable.
func TestAutoReplace(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{ExtraManagerArgs: []string{"-a", "-Rs", "1"}})
	l := &rload{acked: map[string]int{}, deleted: map[string]bool{}}
	stop := l.start(t, c.Gateway(), 2)
	eventually(t, 20*time.Second, "initial load", func() bool { return l.writes.Load() > 200 })
	victim := c.Server(2).Addr
	mp := c.ManagerProc(0)
	off := mp.LogSize()
	kill(t, c, 0, 2)
	if err := mp.WaitLogAfter(off, "replace finished", 30*time.Second); err != nil {
		t.Fatalf("no automatic replace after the loss: %v", err)
	}
	eventually(t, 10*time.Second, "the dead server detached", func() bool {
		return !whs(t, c.Manager(0)).Contains(p2a(t, victim))
	})
	off = mp.LogSize()
	if err := c.RestartServer(2); err != nil {
		t.Fatal(err)
	}
	if err := mp.WaitLogAfter(off, "replace finished", 30*time.Second); err != nil {
		t.Fatalf("no automatic replace after the return: %v", err)
	}
	eventually(t, 10*time.Second, "the server attached again", func() bool {
		return whs(t, c.Manager(0)).IsActive(p2a(t, victim))
	})
	before := l.writes.Load()
	eventually(t, 20*time.Second, "load after the return", func() bool { return l.writes.Load() > before+100 })
	stop()
	l.check(t, c.Gateway())
	l.checkPlacement(t, c, 1)
}
