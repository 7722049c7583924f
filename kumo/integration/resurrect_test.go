package integration

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// Ensure that a server away from the cluster for longer than the garbage
// time, but running all along, brings no deleted key back when it is
// attached again: the other owners have purged the tombstones by then. A
// restart after that long empties the store at start; a server that was
// restarted at once and attached late, or paused (SIGSTOP) for that long,
// used to serve its old copies and even copy them back to the others
// (session 24's hunt: 84-113 of 300 deleted keys came back, 6 of 6 runs).
func TestLongAwayServerNoResurrection(t *testing.T) {
	t.Parallel()
	for _, away := range []string{"restarted", "paused", "restarted twice"} {
		t.Run(away, func(t *testing.T) {
			t.Parallel()
			c, m := startGX(t, 0, "res")
			p := c.Server(1)
			if away == "paused" {
				pid := p.Pid()
				if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
				if err := c.ManagerProc(0).WaitLog("lost node "+p.Addr, 20*time.Second); err != nil {
					t.Fatal(err)
				}
			} else {
				kill(t, c, 0, 1)
			}
			for i := range n {
				if r := m.cmd("delete res" + strconv.Itoa(i) + "\r\n"); r != "DELETED\r\n" {
					t.Fatalf("delete res%d: %q", i, r)
				}
			}
			if away == "restarted" {
				// At once: its store is recent, so it keeps it.
				if err := c.RestartServer(1); err != nil {
					t.Fatal(err)
				}
			}
			waitPurged(t, c, 0, 2)
			if away == "restarted twice" {
				// Twice after the others purged: the first start's header
				// write, or a compaction while it is not current, must not
				// make the second start take the store as current.
				if err := c.RestartServer(1); err != nil {
					t.Fatal(err)
				}
				if err := p.WaitLog("discarding", 10*time.Second); err != nil {
					t.Fatal(err)
				}
				p.Stop() // the manager knows it as a newcomer already
				if err := p.Start(); err != nil {
					t.Fatal(err)
				}
				if err := p.WaitLog("discarding", 10*time.Second); err != nil {
					t.Fatalf("the second start did not take the store as away: %v\n%s", err, p.Tail(3000))
				}
			}
			if away == "paused" {
				off := c.ManagerProc(0).LogSize()
				if err := syscall.Kill(p.Pid(), syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
				// Attach once the manager has it back as a newcomer.
				if err := c.ManagerProc(0).WaitLogAfter(off, "new node "+p.Addr, 20*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			attach(t, c, 0)
			wantNoneBack(t, c, "res")
			if err := p.WaitLog("dropped", time.Millisecond); err != nil {
				t.Logf("server 2 log:\n%s", p.Tail(20))
			}
		})
	}
}

// gX and n are the garbage time (-gX, seconds) and the number of keys of
// the tests in this file.
const (
	gX = 4
	n  = 100
)

// startGX starts a cluster of servers (0: the default 3) that run with
// -gX gX and sets n keys prefix0… to "v" through its gateway, on the
// returned connection.
func startGX(t *testing.T, servers int, prefix string) (*localcluster.Cluster, *mc) {
	t.Helper()
	c := localcluster.StartT(t, localcluster.Options{Servers: servers, ExtraServerArgs: []string{"-gN", "1", "-gX", strconv.Itoa(gX)}})
	m := dial(t, c.Gateway())
	for i := range n {
		if r := m.set(prefix+strconv.Itoa(i), "v"); r != "STORED\r\n" {
			t.Fatal(r)
		}
	}
	return c, m
}

// atoiOr returns s as a number, or def if it is none.
func atoiOr(s string, def int) int {
	v, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return v
}

// Ensure that a whole cluster restarted at once and attached longer than
// the garbage time later keeps every key: each server was away that long
// (awayLong), but no server served meanwhile, so no tombstone was purged
// and each store holds copies nobody else has. A purge here would empty
// every store.
func TestWholeClusterLateAttachKeepsData(t *testing.T) {
	t.Parallel()
	c, _ := startGX(t, 0, "late")
	all := []int{0, 1, 2}
	kill(t, c, 0, all...)
	offs := make([]int64, len(all))
	for _, i := range all {
		if err := c.RestartServer(i); err != nil {
			t.Fatal(err)
		}
		offs[i] = c.Server(i).LogSize()
	}
	down := time.Now()
	eventually(t, 30*time.Second, "the servers to wait past -gX", func() bool { return time.Since(down) > (gX+2)*time.Second })
	attach(t, c, 0)
	wantNoPurge(t, c, offs)
	wantAllKeys(t, c, "late")
}

// downPastGX kills the servers and waits until they have been down for
// longer than the garbage time.
func downPastGX(t *testing.T, c *localcluster.Cluster, servers []int) {
	t.Helper()
	kill(t, c, 0, servers...)
	down := time.Now()
	eventually(t, 30*time.Second, "the outage to pass -gX", func() bool { return time.Since(down) > (gX+2)*time.Second })
}

// wantNoPurge fails t if a server logged a purge after offs[i] of its log.
func wantNoPurge(t *testing.T, c *localcluster.Cluster, offs []int64) {
	t.Helper()
	for i, off := range offs {
		if err := c.Server(i).WaitLogAfter(off, "records from before", time.Millisecond); err == nil {
			t.Errorf("%s purged its store: %s", c.Server(i).Addr, c.Server(i).Tail(5))
		}
	}
}

// wantAllKeys fails t unless each of startGX's n keys prefix0… reads "v".
func wantAllKeys(t *testing.T, c *localcluster.Cluster, prefix string) {
	t.Helper()
	m := dial(t, c.Gateway())
	var lost []string
	for i := range n {
		k := prefix + strconv.Itoa(i)
		if v, ok := m.get(k); !ok || v != "v" {
			lost = append(lost, k)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d keys lost, e.g. %v", len(lost), n, lost[:min(5, len(lost))])
	}
}

// Ensure that a whole cluster down for longer than the garbage time keeps
// every key when it is started and attached again: each store was last
// current longer than -gX ago, which used to empty it at start (every
// store, every key); nobody served meanwhile, so nothing is dropped.
func TestWholeClusterOutageKeepsData(t *testing.T) {
	t.Parallel()
	c, _ := startGX(t, 0, "out")
	all := []int{0, 1, 2}
	downPastGX(t, c, all)
	offs := make([]int64, len(all))
	for _, i := range all {
		offs[i] = c.Server(i).LogSize()
		if err := c.RestartServer(i); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range all {
		if err := c.Server(i).WaitLogAfter(offs[i], "discarding", 5*time.Second); err != nil {
			t.Fatalf("%s: %v (its store was not taken as away)", c.Server(i).Addr, err)
		}
	}
	attach(t, c, 0)
	wantAllKeys(t, c, "out")
}

// Ensure that a whole cluster down for longer than the garbage time and
// brought back one server at a time keeps every key. Each server that is
// attached while others already serve again used to purge its old
// records (some server was a reader), so a key whose owners were all among
// the later ones was purged by each of them in turn: with 4 servers, the
// keys the first one does not own were gone. Only a server current all
// the while another was away counts now, and none was.
func TestWholeClusterStaggeredAttachKeepsData(t *testing.T) {
	t.Parallel()
	c, _ := startGX(t, 4, "stag")
	all := []int{0, 1, 2, 3}
	downPastGX(t, c, all)
	offs := make([]int64, len(all))
	for _, i := range all {
		offs[i] = c.Server(i).LogSize()
		if err := c.RestartServer(i); err != nil {
			t.Fatal(err)
		}
		attach(t, c, 0)
	}
	wantNoPurge(t, c, offs)
	wantAllKeys(t, c, "stag")
}
