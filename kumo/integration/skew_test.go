package integration

import (
	"fmt"
	"testing"

	"kumofs/internal/localcluster"
)

// Ensure that clock skew cannot reorder acknowledged writes: server A's
// wall clock runs 2 minutes ahead, server B's 2 minutes behind. A key
// written through A (as coordinator) and then, after A dies, through B must
// read back B's later value, on every owner, also once A is back. With
// kumofs's wall-clock versions B's write would lose; the hybrid logical
// clock makes B's version newer than everything it has seen.
func TestClockSkewKeepsWriteOrder(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	skew := map[int]string{0: "120s", 1: "-120s"}
	for i, off := range skew {
		kill(t, c, 0, i)
		c.Server(i).Env = []string{"KUMO_CLOCK_OFFSET=" + off}
		restartAndAttach(t, c, 0, i)
	}
	a := p2a(t, c.Server(0).Addr)
	b := p2a(t, c.Server(1).Addr)
	hs := whs(t, c.Manager(0))
	// Keys A coordinates and B owns next.
	var keys []string
	for i := 0; len(keys) < 20; i++ {
		k := fmt.Sprintf("skew%d", i)
		o := hs.Lookup([]byte(k))
		if co, ok := o.Coordinator(); ok && co.Addr == a && o.Contains(b) && o.At(1).Addr == b {
			keys = append(keys, k)
		}
	}
	m := dial(t, c.Gateway())
	for _, k := range keys {
		if r := m.set(k, "from-ahead"); r != "STORED\r\n" {
			t.Fatal(r)
		}
	}
	// Keys deleted through the lagging server must stay deleted too.
	for _, k := range keys {
		if r := m.set("del-"+k, "x"); r != "STORED\r\n" {
			t.Fatal(r)
		}
	}
	kill(t, c, 0, 0)
	for _, k := range keys {
		if r := m.cmd("delete del-" + k + "\r\n"); r != "DELETED\r\n" {
			t.Fatalf("delete: %q", r)
		}
	}
	for _, k := range keys {
		if r := m.set(k, "from-behind"); r != "STORED\r\n" {
			t.Fatal(r)
		}
		if v, ok := m.get(k); !ok || v != "from-behind" {
			t.Fatalf("%s: got %q after the later write", k, v)
		}
	}
	restartAndAttach(t, c, 0, 0)
	l := &rload{acked: map[string]int{}, deleted: map[string]bool{}}
	for _, k := range keys {
		if v, ok := m.get(k); !ok || v != "from-behind" {
			t.Fatalf("%s: got %q after the ahead server returned", k, v)
		}
		for i := 0; i < c.NumServers(); i++ {
			if v, ok := serverGet(t, c.Server(i).Addr, k); ok && v != "from-behind" {
				t.Fatalf("%s on %s: %q", k, c.Server(i).Addr, v)
			}
		}
		l.acked[k] = 0
		l.deleted["del-"+k] = true
	}
	l.check(t, c.Gateway())
	l.checkPlacement(t, c, 1)
	checkProcs(t, c)
}
