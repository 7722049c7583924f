package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// Ensure that flush_all survives a server killed with SIGKILL right after
// the OK, before its background sweep reached the values (20,000 keys keep
// it busy for a while): on restart every flushed key stays gone and a key
// set after the flush stays. Before the flush point was kept on disk, all
// 20,000 values came back.
func TestFlushAllSurvivesKill(t *testing.T) {
	t.Parallel()
	const n = 20000
	c := localcluster.StartT(t, localcluster.Options{Servers: 1})
	m := dial(t, c.Gateway())
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "set fk%d 0 0 3 noreply\r\nold\r\n", i)
	}
	m.send(b.String())
	if v, ok := m.get(fmt.Sprintf("fk%d", n-1)); !ok || v != "old" {
		t.Fatalf("the last key before the flush: %q, %v", v, ok)
	}
	if r := m.cmd("flush_all\r\n"); r != "OK\r\n" {
		t.Fatalf("flush_all: %q", r)
	}
	if r := m.set("after", "new"); r != "STORED\r\n" {
		t.Fatalf("set after the flush: %q", r)
	}
	if err := c.KillServer(0); err != nil {
		t.Fatal(err)
	}
	if err := c.RestartServer(0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ctl("attach"); err != nil {
		t.Fatal(err)
	}
	probe := dial(t, c.Gateway())
	eventually(t, 20*time.Second, "the restarted server serving", func() bool {
		probe.send("get after\r\n")
		if l := probe.line(); l != "VALUE after 0 3\r\n" {
			return false // END or SERVER_ERROR while it comes back
		}
		return probe.line() == "new\r\n" && probe.line() == "END\r\n"
	})
	m = dial(t, c.Gateway())
	for i := 0; i < n; i += 100 {
		keys := make([]string, 100)
		for j := range keys {
			keys[j] = fmt.Sprintf("fk%d", i+j)
		}
		if got := m.multiGet(keys); got != "END\r\n" {
			t.Fatalf("flushed keys fk%d..fk%d after the restart: %.200q", i, i+99, got)
		}
	}
}
