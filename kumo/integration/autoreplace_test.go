package integration

import (
	"strings"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// Ensure that enabling automatic replace with kumoctl attaches a waiting
// newcomer and runs the replace: the command used to attach it at once
// without a replace, and with a partner deferring to this manager the
// servers waited for one forever (replstat WAIT).
func TestEnableAutoReplaceRunsReplace(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{Servers: 2})
	p, err := c.AddServer()
	if err != nil {
		t.Fatal(err)
	}
	mp := c.ManagerProc(0)
	off := mp.LogSize()
	if out, err := c.Ctl("enable-auto-replace"); err != nil {
		t.Fatalf("enable-auto-replace: %v %s", err, out)
	}
	if err := mp.WaitLogAfter(off, "replace finished", 30*time.Second); err != nil {
		t.Fatalf("no replace after enable-auto-replace: %v", err)
	}
	eventually(t, 10*time.Second, p.Addr+" active", func() bool {
		out, err := c.Ctl("status")
		return err == nil && strings.Contains(out, p.Addr+"  (active)")
	})
}
