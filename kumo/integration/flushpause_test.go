package integration

import (
	"strconv"
	"syscall"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// Ensure that a flush_all while a server is paused (SIGSTOP) loses none of
// the writes acknowledged after its OK: the paused server used to take the
// flush when it resumed, at its own clock by then, hide the later writes
// the attach copied to it, and hand them to the others as tombstones (hunt
// 26a: all 300 keys set after the flush lost, and for good).
func TestFlushWhileServerPausedKeepsLaterWrites(t *testing.T) {
	t.Parallel()
	const keys = 60
	c := localcluster.StartT(t, localcluster.Options{})
	m := dial(t, c.Gateway())
	for i := range keys {
		if r := m.set("old"+strconv.Itoa(i), "x"); r != "STORED\r\n" {
			t.Fatalf("set old%d: %q", i, r)
		}
	}
	p := c.Server(1)
	pid := p.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	if r := m.cmd("flush_all\r\n"); r != "OK\r\n" {
		t.Fatalf("flush_all: %q", r)
	}
	for i := range keys {
		if r := m.set("new"+strconv.Itoa(i), "n"+strconv.Itoa(i)); r != "STORED\r\n" {
			t.Fatalf("set new%d after the flush: %q", i, r)
		}
	}
	off := c.ManagerProc(0).LogSize()
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := c.ManagerProc(0).WaitLogAfter(off, "new node "+p.Addr, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	attach(t, c, 0)
	m = dial(t, c.Gateway())
	var lost, back []string
	for i := range keys {
		k := "new" + strconv.Itoa(i)
		if v, ok := m.get(k); !ok || v != "n"+strconv.Itoa(i) {
			lost = append(lost, k)
		}
		if _, ok := m.get("old" + strconv.Itoa(i)); ok {
			back = append(back, "old"+strconv.Itoa(i))
		}
	}
	if len(lost) > 0 || len(back) > 0 {
		t.Fatalf("after the paused server's attach: %d of %d keys set after the flush lost (e.g. %v), %d flushed keys back (e.g. %v)",
			len(lost), keys, lost[:min(5, len(lost))], len(back), back[:min(5, len(back))])
	}
	// Each server holds the later writes itself (the paused one too).
	for i := range 3 {
		for _, k := range []string{"new0", "new" + strconv.Itoa(keys-1)} {
			if v, ok := serverGet(t, c.Server(i).Addr, k); !ok || v != "n"+k[3:] {
				t.Errorf("server %d: %s = %q, %v", i+1, k, v, ok)
			}
		}
	}
}
