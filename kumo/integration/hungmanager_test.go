package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/ring"
)

// Ensure that with auto-replace, a hung manager (SIGSTOP: its connections
// stay open) does not keep its partner from detaching a dead server: the
// partner stops deferring to the manager with the smaller address once
// that one no longer answers, and runs the replace itself (SPEC §4).
func TestHungManagerAutoReplace(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{Managers: 2, ExtraManagerArgs: []string{"-a", "-Rs", "1"}})
	a0, _ := ring.ParseAddr(c.Manager(0), 0)
	a1, _ := ring.ParseAddr(c.Manager(1), 0)
	lead, other := 0, 1
	if a1.Compare(a0) < 0 {
		lead, other = 1, 0
	}
	pid := c.ManagerProc(lead).Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	dead := c.Server(2).Addr
	if err := c.KillServer(2); err != nil {
		t.Fatal(err)
	}
	var out string
	eventually(t, 30*time.Second, "the dead server detached by "+c.Manager(other), func() bool {
		b, err := exec.Command(filepath.Join(c.BinDir(), "kumoctl"), c.Manager(other), "status").Output()
		out = string(b)
		return err == nil && strings.Contains(out, "attached node:") && !strings.Contains(out, dead)
	})
	t.Logf("status after the detach:\n%s", out)
}
