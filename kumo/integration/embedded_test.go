package integration

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// TestEmbeddedGateway: kumo-server -t serves memcached itself. It reads a
// plain get from its own store when it owns the key (with three servers
// and three copies: always) but a gets from the key's first owner, where a
// cas is decided; it stores plain sets on every owner, and keeps serving
// when another server is killed.
func TestEmbeddedGateway(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{EmbeddedGateway: true})
	if c.GatewayProc() != nil {
		t.Fatal("a kumo-gateway process was started")
	}
	if c.Gateway() == "" || !strings.Contains(strings.Join(c.Server(0).Args, " "), "-t "+c.Gateway()) {
		t.Fatalf("server 1 does not serve the gateway address %q: %v", c.Gateway(), c.Server(0).Args)
	}
	m := dial(t, c.Gateway())
	const n = 60
	for i := range n {
		k := "emb" + strconv.Itoa(i)
		if r := m.set(k, "v"+k); r != "STORED\r\n" {
			t.Fatalf("set %s: %q", k, r)
		}
	}
	before := make([]int, 3)
	for i := range 3 {
		before[i] = cmdGet(t, c, i)
	}
	for i := range n {
		k := "emb" + strconv.Itoa(i)
		if v, ok := m.get(k); !ok || v != "v"+k {
			t.Fatalf("get %s = %q, %v", k, v, ok)
		}
	}
	// Every read was served by server 1, the embedded gateway's own.
	if d := cmdGet(t, c, 0) - before[0]; d != n {
		t.Errorf("server 1 served %d of %d gets", d, n)
	}
	for i := 1; i < 3; i++ {
		if d := cmdGet(t, c, i) - before[i]; d != 0 {
			t.Errorf("server %d served %d gets, want 0", i+1, d)
		}
	}
	// A gets goes to the key's first owner: server 1 for about a third of
	// the keys, the others for the rest.
	for i := range 3 {
		before[i] = cmdGet(t, c, i)
	}
	for i := range n {
		k := "emb" + strconv.Itoa(i)
		if v, _, ok := m.gets(k); !ok || v != "v"+k {
			t.Fatalf("gets %s = %q, %v", k, v, ok)
		}
	}
	served := make([]int, 3)
	for i := range 3 {
		served[i] = cmdGet(t, c, i) - before[i]
	}
	if served[0]+served[1]+served[2] != n || served[1]+served[2] == 0 || served[0] == 0 {
		t.Errorf("gets served by the three servers: %v; want %d, from all three", served, n)
	}
	// Every owner holds the sets.
	for i := range 3 {
		if v, ok := serverGet(t, c.Server(i).Addr, "emb7"); !ok || v != "vemb7" {
			t.Fatalf("server %d holds emb7 = %q, %v", i+1, v, ok)
		}
	}

	if err := c.KillServer(2); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := range n {
		k := "emb" + strconv.Itoa(i)
		if r := m.set(k, "w"+k); r != "STORED\r\n" {
			t.Fatalf("set %s with server 3 killed: %q", k, r)
		}
		if v, ok := m.get(k); !ok || v != "w"+k {
			t.Fatalf("get %s with server 3 killed = %q, %v", k, v, ok)
		}
		if time.Now().After(deadline) {
			t.Fatal("too slow with a server killed")
		}
	}
}

// cmdGet returns server i's cmd_get counter.
func cmdGet(t *testing.T, c *localcluster.Cluster, i int) int {
	t.Helper()
	out, err := c.StatServer(i, "cmd_get")
	if err != nil {
		t.Fatalf("kumostat: %v", err)
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		t.Fatalf("kumostat cmd_get: %q", out)
	}
	v, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		t.Fatalf("kumostat cmd_get: %q", out)
	}
	return v
}

// Ensure that the embedded gateway caps its memcached connections as
// kumo-gateway does (--max-conns): one over the cap gets memcached's error
// and is closed, and a place freed is taken again. Without a cap, clients
// could take every descriptor of the server and lock the cluster out of it.
func TestEmbeddedMaxConns(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{EmbeddedGateway: true, Servers: 1, ExtraServerArgs: []string{"--max-conns", "3"}})
	// Start's probe connection may still hold a place until the server
	// notices it closed, so a refused first connection is retried.
	var held []*mc
	for range 3 {
		eventually(t, 10*time.Second, "a place under the cap", func() bool {
			m := dial(t, c.Gateway())
			m.conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, err := m.conn.Write([]byte("version\r\n"))
			var l string
			if err == nil {
				l, err = m.r.ReadString('\n')
			}
			if err != nil || !strings.HasPrefix(l, "VERSION ") {
				m.conn.Close()
				return false
			}
			held = append(held, m)
			return true
		})
	}
	over := dial(t, c.Gateway())
	if l := over.line(); l != "ERROR Too many open connections\r\n" {
		t.Fatalf("a connection over the cap got %q", l)
	}
	held[0].conn.Close()
	eventually(t, 10*time.Second, "a freed place taken again", func() bool {
		m := dial(t, c.Gateway())
		defer m.conn.Close()
		m.send("version\r\n")
		return strings.HasPrefix(m.line(), "VERSION ")
	})
}
