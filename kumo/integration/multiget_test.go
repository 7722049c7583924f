package integration

import (
	"fmt"
	"strings"
	"testing"

	"kumofs/internal/localcluster"
)

// multiGet sends one get of keys and returns the whole reply up to END.
func (c *mc) multiGet(keys []string) string {
	c.send("get " + strings.Join(keys, " ") + "\r\n")
	var b strings.Builder
	for {
		l := c.line()
		b.WriteString(l)
		if l == "END\r\n" || strings.HasPrefix(l, "SERVER_ERROR") {
			return b.String()
		}
	}
}

// Ensure that a multi-key get over keys of every server (read with one
// SrvGetMulti per server) answers exactly, in key order, with misses and a
// repeated key, and still does while and after a server is killed: the keys
// of the dead server's group are read again the usual way.
func TestMultiGetAcrossServers(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	m := dial(t, c.Gateway())
	var keys []string
	var want strings.Builder
	for i := range 40 {
		k := fmt.Sprintf("mk%d", i)
		keys = append(keys, k)
		if i%5 == 4 {
			continue // a miss
		}
		v := fmt.Sprintf("value-%d", i)
		if r := m.set(k, v); r != "STORED\r\n" {
			t.Fatalf("set %s: %q", k, r)
		}
		fmt.Fprintf(&want, "VALUE %s 0 %d\r\n%s\r\n", k, len(v), v)
	}
	keys = append(keys, "mk0")
	want.WriteString("VALUE mk0 0 7\r\nvalue-0\r\nEND\r\n")
	if got := m.multiGet(keys); got != want.String() {
		t.Fatalf("multi-key get:\n got %q\nwant %q", got, want.String())
	}
	if err := c.KillServer(1); err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // across the fail-over
		if got := m.multiGet(keys); got != want.String() {
			t.Fatalf("multi-key get %d after the kill:\n got %q\nwant %q", i, got, want.String())
		}
	}
}
