package localcluster

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// realBinDir returns the built kumo binaries, or skips the test when the
// daemons are not part of the module yet or -short is set.
func realBinDir(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real daemons")
	}
	d, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"kumo-manager", "kumo-server", "kumo-gateway", "kumoctl", "kumostat"} {
		if _, err := os.Stat(filepath.Join(d, b)); err != nil {
			t.Skipf("%s not built: %v", b, err)
		}
	}
	return d
}

// waitCtl polls `kumoctl MGR status` until its output holds want.
func waitCtl(t *testing.T, c *Cluster, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := c.Ctl("status")
		if err == nil && strings.Contains(out, want) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("kumoctl status never showed %q; last:\n%s (%v)", want, out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The harness against the real daemons: start, attach, the admin tools,
// kill and restart a server, add one, stop everything.
func TestRealCluster(t *testing.T) {
	c := StartT(t, Options{BinDir: realBinDir(t)})
	out := waitCtl(t, c, "not attached node:\n", 0)
	for i := range 3 {
		if !strings.Contains(out, "  "+c.Server(i).Addr+"  (active)\n") {
			t.Fatalf("server %d not attached and active:\n%s", i, out)
		}
	}
	items, err := c.Stat("items")
	if err != nil {
		t.Fatal(err)
	}
	// The probe key, deleted again, lives on all three servers as a tombstone.
	for i := range 3 {
		if !strings.Contains(items, c.Server(i).Addr+":  1\n") {
			t.Fatalf("kumostat -m items:\n%s", items)
		}
	}
	if pid, err := c.StatServer(0, "pid"); err != nil || strings.TrimSpace(pid) != itoa(c.Server(0).Pid()) {
		t.Fatalf("kumostat pid = %q, %v; want %d", pid, err, c.Server(0).Pid())
	}

	s := c.Server(2)
	if err := c.KillServer(2); err != nil {
		t.Fatal(err)
	}
	waitCtl(t, c, "  "+s.Addr+"  (fault)\n", 30*time.Second)
	if err := c.RestartServer(2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ctl("attach"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out = waitCtl(t, c, "  "+s.Addr+"  (active)\n", 30*time.Second)
		if !strings.Contains(out, "(fault)") && strings.HasSuffix(out, "not attached node:\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted server not back:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	p, err := c.AddServer()
	if err != nil {
		t.Fatal(err)
	}
	waitCtl(t, c, "not attached node:\n  "+p.Addr+"\n", 10*time.Second)
	if err := c.Probe(10 * time.Second); err != nil {
		t.Fatal(err)
	}

	procs := c.Procs()
	c.Stop()
	for _, p := range procs {
		if p.Alive() {
			t.Errorf("%s alive after Stop", p.Name)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
