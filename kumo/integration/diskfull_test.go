//go:build linux

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/store"
)

// smallStore makes a data folder for localcluster whose server-1.kch is a
// small store on a 3 MB tmpfs (mounted at the returned full, unmounted when
// the test ends). Skips the test where it cannot mount one (not root).
func smallStore(t *testing.T) (dir, full string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir = t.TempDir()
	full = filepath.Join(dir, "full")
	if err := os.Mkdir(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", full, "tmpfs", 0, "size=3m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(full, syscall.MNT_DETACH) })
	real := filepath.Join(full, "server-1.kch")
	if err := store.Create(real, 8192); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "server-1.kch")); err != nil {
		t.Fatal(err)
	}
	return dir, full
}

// Ensure that a server whose disk fills up stops taking part without
// failing any client write: it reports the full disk, the manager marks it
// fault and the other owners carry on; when space returns it reports that
// too, rejoins (auto-replace here) and is brought up to date. Needs root
// to mount a small tmpfs under the server's store.
func TestDiskFullServer(t *testing.T) {
	t.Parallel()
	dir, full := smallStore(t)
	c := localcluster.StartT(t, localcluster.Options{Dir: dir, ExtraManagerArgs: []string{"-a", "-Rs", "1"}})
	m := dial(t, c.Gateway())
	val := strings.Repeat("v", 1000)
	const n = 5000 // about 5 MB: more than the 3 MB tmpfs holds
	for i := 0; i < n; i++ {
		if r := m.set(fmt.Sprintf("df%d", i), val); r != "STORED\r\n" {
			t.Fatalf("set df%d while a disk filled: %q", i, r)
		}
	}
	mp := c.ManagerProc(0)
	if err := mp.WaitLog("reports a full disk", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// Deletes while the full server is out must not come back with it.
	for i := 0; i < n; i += 10 {
		if r := m.cmd(fmt.Sprintf("delete df%d\r\n", i)); r != "DELETED\r\n" {
			t.Fatalf("delete df%d: %q", i, r)
		}
	}
	off := mp.LogSize()
	if err := syscall.Mount("tmpfs", full, "tmpfs", syscall.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatalf("growing the tmpfs: %v", err)
	}
	if err := mp.WaitLogAfter(off, "has disk room again", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// Auto-replace first detaches the full server, then attaches it again
	// once it has room: wait for the replace that follows that attach.
	eventually(t, 30*time.Second, "the server attached again and its replace done", func() bool {
		b, err := os.ReadFile(mp.LogPath)
		if err != nil || int64(len(b)) < off {
			return false
		}
		tail := string(b[off:])
		i := strings.Index(tail, "attached: 3 servers")
		return i >= 0 && strings.Contains(tail[i:], "replace finished")
	})
	l := &rload{acked: map[string]int{}, deleted: map[string]bool{}}
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("df%d", i)
		v, ok := m.get(k)
		if i%10 == 0 {
			if ok {
				t.Fatalf("deleted %s came back", k)
			}
			l.deleted[k] = true
			continue
		}
		if !ok || v != val {
			t.Fatalf("%s after the disk filled and recovered: hit %v", k, ok)
		}
		l.acked[k] = 0
	}
	l.checkPlacement(t, c, 1)
	checkProcs(t, c)
}

// Ensure that when every owner's disk is full a set fails as memcached's
// does when it has no memory, within seconds, not after the gateway's
// whole retry timeout; reads go on meanwhile.
func TestDiskFullEveryOwner(t *testing.T) {
	t.Parallel()
	dir, _ := smallStore(t)
	c := localcluster.StartT(t, localcluster.Options{Dir: dir, Servers: 1})
	m := dial(t, c.Gateway())
	val := strings.Repeat("v", 1000)
	if r := m.set("first", "1"); r != "STORED\r\n" {
		t.Fatalf("set first: %q", r)
	}
	failed := 0
	for i := 0; i < 10000 && failed < 5; i++ {
		start := time.Now()
		r := m.set(fmt.Sprintf("full%d", i), val)
		took := time.Since(start)
		if r == "STORED\r\n" {
			if failed > 0 {
				t.Fatalf("set full%d stored after an earlier set failed for a full disk", i)
			}
			continue
		}
		if r != "SERVER_ERROR out of memory storing object\r\n" {
			t.Fatalf("set full%d on a full disk: %q", i, r)
		}
		if took > 6*time.Second {
			t.Fatalf("set full%d took %v to fail (the retry timeout is 10 s)", i, took)
		}
		failed++
	}
	if failed == 0 {
		t.Fatal("10,000 sets of 1 KB fitted on a 3 MB tmpfs")
	}
	if v, ok := m.get("first"); !ok || v != "1" {
		t.Fatalf("get after the disk filled: %q %v", v, ok)
	}
}
