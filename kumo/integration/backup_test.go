package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

// Ensure that the documented backup and restore path works: kumoctl backup
// writes <-s path>-<suffix> on every server, kumomergedb merges them
// (newest version wins, tombstones included), and servers started on the
// merged file serve every live key and none of the deleted ones.
func TestBackupAndRestore(t *testing.T) {
	t.Parallel()
	c := localcluster.StartT(t, localcluster.Options{})
	m := dial(t, c.Gateway())
	for i := 0; i < 100; i++ {
		if r := m.cmd(fmt.Sprintf("set b%d %d 0 2\r\nv%d\r\n", i, i, i%10)); r != "STORED\r\n" {
			t.Fatal(r)
		}
	}
	for i := 0; i < 100; i += 10 {
		if r := m.cmd(fmt.Sprintf("delete b%d\r\n", i)); r != "DELETED\r\n" {
			t.Fatal(r)
		}
	}
	var offs []int64
	for i := 0; i < c.NumServers(); i++ {
		offs = append(offs, c.Server(i).LogSize())
	}
	if out, err := c.Ctl("backup", "t1"); err != nil || !strings.Contains(out, "suffix=t1") {
		t.Fatalf("kumoctl backup: %v %q", err, out)
	}
	var backups []string
	for i := 0; i < c.NumServers(); i++ {
		if err := c.Server(i).WaitLogAfter(offs[i], "backup written", 20*time.Second); err != nil {
			t.Fatal(err)
		}
		backups = append(backups, storePath(t, c.Server(i))+"-t1")
	}
	dir, err := localcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	merged := filepath.Join(t.TempDir(), "merged.kch")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "kumomergedb"), append([]string{merged}, backups...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "done.") {
		t.Fatalf("kumomergedb: %v\n%s", err, out)
	}
	// Restore: stop every server, put the merged file in place, start,
	// attach.
	for i := 0; i < c.NumServers(); i++ {
		if err := c.Server(i).Stop(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < c.NumServers(); i++ {
		copyFile(t, merged, storePath(t, c.Server(i)))
	}
	restartAndAttach(t, c, 0, 0, 1, 2)
	m = dial(t, c.Gateway())
	for i := 0; i < 100; i++ {
		v, ok := m.get(fmt.Sprintf("b%d", i))
		if i%10 == 0 {
			if ok {
				t.Fatalf("deleted b%d restored: %q", i, v)
			}
			continue
		}
		if !ok || v != fmt.Sprintf("v%d", i%10) {
			t.Fatalf("b%d after restore: %q %v", i, v, ok)
		}
	}
}

// storePath returns the -s argument of a server process.
func storePath(t *testing.T, p *localcluster.Proc) string {
	for i, a := range p.Args {
		if a == "-s" && i+1 < len(p.Args) {
			return p.Args[i+1]
		}
	}
	t.Fatalf("%s has no -s", p)
	return ""
}

func copyFile(t *testing.T, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
