package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// Ensure that after every server was stopped at once, one of them restarted
// with an empty store (operations.md's advice for a damaged one) and the
// cluster attached again, every acknowledged key reads back. Each manager
// marks only the losses it sees before the partner's space arrives, so the
// newer, half-marked space could keep a dead server active; the managers
// had forgotten its incarnation and took its new process back without an
// attach, serving misses for its share of the keys (session 23's hunt 1).
// That race is rare here (one run in about 15 ends with a server left
// active; TestLostServerRestartNeedsAttach in kumo/manager pins the
// mechanism): this test checks the whole procedure around it.
func TestWholeClusterKillEmptyStore(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{Managers: 2})
	m := dial(t, c.Gateway())
	const n = 300
	for i := range n {
		k := "whole" + strconv.Itoa(i)
		if r := m.set(k, "v"+k); r != "STORED\r\n" {
			t.Fatalf("set %s: %q", k, r)
		}
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); c.Server(i).Stop() }()
	}
	wg.Wait()
	ctl := filepath.Join(c.BinDir(), "kumoctl")
	var outs [2]string
	eventually(t, 15*time.Second, "both managers to show one hash space with the losses", func() bool {
		for i := range outs {
			b, err := exec.Command(ctl, c.Manager(i), "status").Output()
			if err != nil {
				return false
			}
			outs[i], _, _ = strings.Cut(string(b), "not attached node:")
		}
		return strings.Contains(outs[0], "(fault)") && outs[0] == outs[1]
	}, func() string { return fmt.Sprintf("%q\n%q", outs[0], outs[1]) })

	// Empty the store of the server the agreed space still has active,
	// if any (the case this test is about), else of the last one.
	victim := 2
	for i := range 3 {
		if strings.Contains(outs[0], c.Server(i).Addr+"  (active)") {
			victim = i
		}
	}
	t.Logf("agreed space:\n%sempty store: server %d", outs[0], victim+1)
	store := ""
	for j, a := range c.Server(victim).Args {
		if a == "-s" && j+1 < len(c.Server(victim).Args) {
			store = c.Server(victim).Args[j+1]
		}
	}
	files, _ := filepath.Glob(store + "*")
	if store == "" || len(files) == 0 {
		t.Fatalf("no store files for %q", store)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := c.RestartServer(i); err != nil {
			t.Fatalf("restart server %d: %v", i+1, err)
		}
	}
	mgr := c.ManagerProc(0)
	off := mgr.LogSize()
	if out, err := c.Ctl("attach"); err != nil {
		t.Fatalf("attach: %v\n%s", err, out)
	}
	if err := mgr.WaitLogAfter(off, "replace finished", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var missing []string
	eventually(t, 20*time.Second, "every acknowledged key to read back", func() bool {
		m := dial(t, c.Gateway())
		defer m.conn.Close()
		missing = missing[:0]
		for i := range n {
			k := "whole" + strconv.Itoa(i)
			if v, ok := m.get(k); !ok || v != "v"+k {
				missing = append(missing, k)
			}
		}
		return len(missing) == 0
	}, func() string {
		return fmt.Sprintf("%d of %d missing, e.g. %v", len(missing), n, missing[:min(5, len(missing))])
	})
}
