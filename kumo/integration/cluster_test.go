package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/store"
)

// Ensure that every memcached command works end to end through a gateway
// over three servers, and that every key ends up on all three owners.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	m := dial(t, c.Gateway())

	steps := []struct{ send, want string }{
		{"set a 5 0 3\r\nabc\r\n", "STORED\r\n"},
		{"get a\r\n", "VALUE a 5 3\r\nabc\r\nEND\r\n"},
		{"add a 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
		{"add b 0 0 1\r\nx\r\n", "STORED\r\n"},
		{"replace nokey 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
		{"append a 9 0 2\r\nde\r\n", "STORED\r\n"},
		{"prepend a 9 0 1\r\n_\r\n", "STORED\r\n"},
		{"get a\r\n", "VALUE a 5 6\r\n_abcde\r\nEND\r\n"},
		{"set n 0 0 3\r\n100\r\n", "STORED\r\n"},
		{"incr n 5\r\n", "105\r\n"},
		{"decr n 200\r\n", "0\r\n"},
		{"incr nokey 1\r\n", "NOT_FOUND\r\n"},
		{"incr a 1\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
		{"touch a 100\r\n", "TOUCHED\r\n"},
		{"touch nokey 100\r\n", "NOT_FOUND\r\n"},
		{"delete b\r\n", "DELETED\r\n"},
		{"delete b\r\n", "NOT_FOUND\r\n"},
		{"get b\r\n", "END\r\n"},
		{"set e 0 -1 1\r\nx\r\n", "STORED\r\n"},
		{"get e\r\n", "END\r\n"},
		// gat with a past exptime returns the item once, as memcached does.
		{"set g 0 0 1\r\ny\r\n", "STORED\r\n"},
		{"gat -1 g\r\n", "VALUE g 0 1\r\ny\r\nEND\r\n"},
		{"get g\r\n", "END\r\n"},
		{"set ctr 0 0 6\r\n42 abc\r\n", "STORED\r\n"},
		{"incr ctr 1\r\n", "43\r\n"},                          // memcached reads the leading number
		{"get ctr\r\n", "VALUE ctr 0 6\r\n43    \r\nEND\r\n"}, // and rewrites it in place
		// A counter that shrank keeps its length, padded, as memcached's.
		{"get a nokey n a\r\n", "VALUE a 5 6\r\n_abcde\r\nVALUE n 0 3\r\n0  \r\nVALUE a 5 6\r\n_abcde\r\nEND\r\n"},
	}
	for _, s := range steps {
		m.send(s.send)
		var got strings.Builder
		for got.Len() < len(s.want) {
			got.WriteString(m.line())
		}
		if got.String() != s.want {
			t.Fatalf("%q: got %q, want %q", s.send, got.String(), s.want)
		}
	}

	// gets/cas: a matching unique stores, a stale one answers EXISTS.
	_, cas, ok := m.gets("a")
	if !ok {
		t.Fatal("gets a: miss")
	}
	if r := m.cmd(fmt.Sprintf("cas a 0 0 1 %d\r\nz\r\n", cas)); r != "STORED\r\n" {
		t.Fatalf("cas: %q", r)
	}
	if r := m.cmd(fmt.Sprintf("cas a 0 0 1 %d\r\ny\r\n", cas)); r != "EXISTS\r\n" {
		t.Fatalf("stale cas: %q", r)
	}
	if r := m.cmd("cas nokey 0 0 1 1\r\ny\r\n"); r != "NOT_FOUND\r\n" {
		t.Fatalf("cas on a missing key: %q", r)
	}

	// Every key lives on its three owners: with three servers, on all.
	for i := 0; i < c.NumServers(); i++ {
		addr := c.Server(i).Addr
		if v, ok := serverGet(t, addr, "a"); !ok || v != "z" {
			t.Fatalf("server %s holds a=%q,%v, want z", addr, v, ok)
		}
		if _, ok := serverGet(t, addr, "b"); ok {
			t.Fatalf("server %s still serves deleted key b", addr)
		}
	}

	// flush_all empties every server.
	if r := m.cmd("flush_all\r\n"); r != "OK\r\n" {
		t.Fatalf("flush_all: %q", r)
	}
	eventually(t, 10*time.Second, "flush on every server", func() bool {
		for i := 0; i < c.NumServers(); i++ {
			if _, ok := serverGet(t, c.Server(i).Addr, "a"); ok {
				return false
			}
		}
		return true
	})
	if _, ok := m.get("a"); ok {
		t.Fatal("a survived flush_all")
	}
	if r := m.set("after", "1"); r != "STORED\r\n" {
		t.Fatalf("set after flush: %q", r)
	}
	if v, ok := m.get("after"); !ok || v != "1" {
		t.Fatalf("get after flush: %q %v", v, ok)
	}
}

// Ensure that a server whose store was created small grows it online
// instead of refusing writes when the slot table fills.
func TestStoreGrowsOnline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := 1; i <= 3; i++ {
		if err := store.Create(filepath.Join(dir, fmt.Sprintf("server-%d.kch", i)), 1024); err != nil {
			t.Fatal(err)
		}
	}
	c := localcluster.StartT(t, localcluster.Options{Dir: dir})
	m := dial(t, c.Gateway())
	const n = 5000
	for i := 0; i < n; i++ {
		if r := m.set(fmt.Sprintf("grow%d", i), "v"); r != "STORED\r\n" {
			t.Fatalf("set grow%d: %q", i, r)
		}
	}
	for i := 0; i < n; i++ {
		if v, ok := m.get(fmt.Sprintf("grow%d", i)); !ok || v != "v" {
			t.Fatalf("grow%d: %q %v", i, v, ok)
		}
	}
	if err := c.Server(0).WaitLog("growing it online", time.Second); err != nil {
		t.Fatal(err)
	}
}
