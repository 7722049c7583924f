package integration

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// Ensure that the gets queued for a paused server's embedded gateway are
// not answered from its store as it was: while it did not run, the
// managers marked it fault and the keys were written and deleted on the
// other owners (hunt 27a: up to 300 of 600 such gets answered with the old
// value or a deleted key's, 5 of 5 runs).
//
// With a manager pair whose second manager is down the server keeps failing
// to reach it, and that silence before the stall must not count as the
// managers' (hunt 27c: the old values were back, 4 of 4 runs).
func TestPausedServerServesNoOldValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		managers   int
		killSecond bool
	}{{"one manager", 1, false}, {"second manager down", 2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := localcluster.StartT(t, localcluster.Options{EmbeddedGateway: true, Managers: tc.managers})
			if tc.killSecond {
				if err := c.ManagerProc(1).Kill(); err != nil {
					t.Fatal(err)
				}
			}
			pausedServerReads(t, c)
		})
	}
}

// pausedServerReads is the body of TestPausedServerServesNoOldValues.
func pausedServerReads(t *testing.T, c *localcluster.Cluster) {
	const keys = 40
	g2 := startGateway(t, c, "gateway-2")
	m := dial(t, g2.Addr)
	for i := range keys {
		if r := m.set("pk"+strconv.Itoa(i), "v1"); r != "STORED\r\n" {
			t.Fatalf("set pk%d: %q", i, r)
		}
	}
	e := dial(t, c.Gateway()) // server 1's own memcached port, opened before the pause
	if r := e.cmd("version\r\n"); !strings.HasPrefix(r, "VERSION ") {
		t.Fatalf("version: %q", r)
	}
	p := c.Server(0)
	pid := p.Pid()
	off := c.ManagerProc(0).LogSize()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	if err := c.ManagerProc(0).WaitLogAfter(off, "lost node "+p.Addr, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		k := "pk" + strconv.Itoa(i)
		if i%2 == 0 {
			if r := m.set(k, "v2"); r != "STORED\r\n" {
				t.Fatalf("set %s while server 1 is paused: %q", k, r)
			}
		} else if r := m.cmd("delete " + k + "\r\n"); r != "DELETED\r\n" {
			t.Fatalf("delete %s while server 1 is paused: %q", k, r)
		}
	}
	// The stall lasts at least 5 s, as in the hunt: longer than any
	// silence a check might count (not a synchronisation: the length of
	// the pause is the scenario).
	time.Sleep(time.Until(stopped.Add(5 * time.Second)))
	// Queued while it does not run, after the writes were acknowledged.
	var b strings.Builder
	for i := range keys {
		b.WriteString("get pk" + strconv.Itoa(i) + "\r\n")
	}
	e.send(b.String())
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	var wrong []string
	for i := range keys {
		k := "pk" + strconv.Itoa(i)
		v, _, ok := e.reply("get", k)
		if want := i%2 == 0; ok != want || (ok && v != "v2") {
			wrong = append(wrong, k+"="+v)
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of %d gets queued at the paused server answered from its old store: %v", len(wrong), keys, wrong)
	}
}

// Ensure that servers all paused together until the managers marked every
// one fault serve reads again once they run: the manager's write space, in
// which every server is fault, is refused (adopt), and the spaces they hold
// are the last they know (hunt 27c: every read answered "server not ready"
// until an attach, 5 of 5 runs).
func TestAllServersPausedServeAgain(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	m := dial(t, c.Gateway())
	if r := m.set("allpaused", "v1"); r != "STORED\r\n" {
		t.Fatalf("set: %q", r)
	}
	off := c.ManagerProc(0).LogSize()
	var pids []int
	for i := range 3 {
		pid := c.Server(i).Pid()
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	}
	for i := range 3 {
		if err := c.ManagerProc(0).WaitLogAfter(off, "lost node "+c.Server(i).Addr, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	var last string
	eventually(t, 20*time.Second, "a read after every server resumed", func() bool {
		r := dial(t, c.Gateway())
		last = r.cmd("get allpaused\r\n")
		return last == "VALUE allpaused 0 2\r\n"
	}, func() string { return last })
}
