package integration

import (
	"bytes"
	"os"
	"strconv"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// Ensure that a server whose store returns damaged data is taken out of
// the cluster (fault) instead of failing the clients' writes of the
// damaged keys: a record whose value was changed on disk used to make
// every write of that key that reached the server answer SERVER_ERROR
// after 10-20 s (its check of the record being replaced failed), and
// compactions and replace copies failed over and over, while the server
// stayed active (this session's operator hunt, F4).
func TestCorruptStoreServerIsFault(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	m := dial(t, c.Gateway())
	const n = 20
	val := func(i int) string { return "dmgvalue-" + strconv.Itoa(i) + "-0123456789" }
	for i := range n {
		if r := m.set("dmg"+strconv.Itoa(i), val(i)); r != "STORED\r\n" {
			t.Fatal(r)
		}
	}
	// Stopped cleanly, so that the record is below the store's checkpoint:
	// a damaged record past it would be cut off at the restart as a torn
	// write, as after a crash.
	p := c.Server(1)
	mp := c.ManagerProc(0)
	off := mp.LogSize()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := mp.WaitLogAfter(off, "lost node "+p.Addr, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	path := storePath(t, p)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, []byte(val(5)))
	if at < 0 {
		t.Fatalf("no record of dmg5 in %s", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), int64(at)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	off = mp.LogSize()
	if err := c.RestartServer(1); err != nil {
		t.Fatal(err)
	}
	// The attach's replace copy reads every record and finds the damaged
	// one; the server reports it and is marked fault.
	if _, err := c.Ctl("attach"); err != nil {
		t.Fatal(err)
	}
	if err := mp.WaitLogAfter(off, "reports damaged data in its store", 20*time.Second); err != nil {
		t.Fatalf("the manager was not told of the damaged store: %v\n%s", err, p.Tail(3000))
	}
	eventually(t, 20*time.Second, "server 2 to be fault", func() bool {
		out, err := c.Ctl("status")
		return err == nil && bytes.Contains([]byte(out), []byte(p.Addr+"  (fault)"))
	})
	m = dial(t, c.Gateway())
	if r := m.set("dmg5", "new"); r != "STORED\r\n" {
		t.Fatalf("set of the damaged key: %q", r)
	}
	for i := range n {
		want := val(i)
		if i == 5 {
			want = "new"
		}
		if v, ok := m.get("dmg" + strconv.Itoa(i)); !ok || v != want {
			t.Fatalf("dmg%d: %q %v, want %q", i, v, ok, want)
		}
	}
	if r := m.set("dmg5", "newer"); r != "STORED\r\n" {
		t.Fatalf("set after the fault: %q", r)
	}
}
