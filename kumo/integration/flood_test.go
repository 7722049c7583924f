package integration

import (
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// Ensure that a gateway flooded with idle connections, clients that never
// read their replies and clients that send a byte at a time keeps serving
// everyone else, with bounded memory.
func TestConnectionFloods(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("RSS is read from /proc")
	}
	c := localcluster.StartT(t, localcluster.Options{})
	addr := c.Gateway()
	var conns []net.Conn
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	open := func() net.Conn {
		cn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, cn)
		return cn
	}
	// 1000 idle connections.
	for i := 0; i < 1000; i++ {
		open()
	}
	// 50 clients that pipeline gets of a 100 KiB value and never read.
	m := dial(t, addr)
	big := strings.Repeat("x", 100<<10)
	if r := m.set("big", big); r != "STORED\r\n" {
		t.Fatal(r)
	}
	req := []byte(strings.Repeat("get big\r\n", 200))
	for i := 0; i < 50; i++ {
		cn := open()
		cn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		for j := 0; j < 20; j++ {
			if _, err := cn.Write(req); err != nil {
				break // the gateway stopped reading: back-pressure, as it should
			}
		}
	}
	// 50 clients that send one byte of a command and stall.
	for i := 0; i < 50; i++ {
		open().Write([]byte("g"))
	}
	// Everyone else is served as usual: writes, deletes, reads.
	if r := m.set("gone", "1"); r != "STORED\r\n" {
		t.Fatal(r)
	}
	if r := m.cmd("delete gone\r\n"); r != "DELETED\r\n" {
		t.Fatalf("delete during the flood: %q", r)
	}
	if _, ok := m.get("gone"); ok {
		t.Fatal("a deleted key came back during the flood")
	}
	for i := 0; i < 200; i++ {
		if r := m.set("ok", "1"); r != "STORED\r\n" {
			t.Fatalf("set during the flood: %q", r)
		}
		if v, ok := m.get("ok"); !ok || v != "1" {
			t.Fatalf("get during the flood: %q %v", v, ok)
		}
	}
	g := c.GatewayProc()
	kb := rss(t, g.Pid())
	t.Logf("gateway RSS with %d hostile connections: %d KiB", len(conns), kb)
	if kb > 256<<10 {
		t.Fatalf("gateway uses %d KiB with %d hostile connections", kb, len(conns))
	}
	if !g.Alive() {
		t.Fatal("gateway died")
	}
	checkProcs(t, c)
}
