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
func TestPausedServerServesNoOldValues(t *testing.T) {
	t.Parallel()
	const keys = 40
	c := localcluster.StartT(t, localcluster.Options{EmbeddedGateway: true})
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
