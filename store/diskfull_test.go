//go:build linux

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Ensure that a full file system makes writes fail with ENOSPC instead of
// crashing the process (a touch of an unbacked mapped page is a SIGBUS),
// and that everything acknowledged before reads back after a reopen.
// It needs root to mount a small tmpfs.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	path := filepath.Join(dir, "full.kch")
	if err := Create(path, 4096); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 1000)
	acked := 0
	var werr error
	for i := 0; i < 10000; i++ {
		werr = db.Put(&Record{Key: []byte(fmt.Sprintf("k%05d", i)), Value: val, Clock: uint64(i + 1)})
		if werr != nil {
			break
		}
		acked++
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("after %d puts: %v, want ENOSPC", acked, werr)
	}
	// Reads keep working on a full disk.
	if _, _, err := db.Get([]byte("k00000"), nil); err != nil {
		t.Fatalf("get on a full disk: %v", err)
	}
	db.Close()
	db, err = Open(path, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatalf("reopen after the disk filled: %v", err)
	}
	defer db.Close()
	for i := 0; i < acked; i++ {
		r, _, err := db.Get([]byte(fmt.Sprintf("k%05d", i)), nil)
		if err != nil || r.Clock != uint64(i+1) || len(r.Value) != len(val) {
			t.Fatalf("record %d of %d acknowledged: %v", i, acked, err)
		}
	}
	t.Logf("%d records acknowledged before ENOSPC", acked)
}

// Ensure that a slot table the file system cannot hold is refused at open
// with ENOSPC rather than mapped sparse and crashing the first write.
func TestDiskFullSlotTable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	path := filepath.Join(dir, "big.kch")
	if err := Create(path, 1<<20); err != nil { // an 8 MiB slot table, sparse
		t.Fatal(err)
	}
	db, err := Open(path, nil)
	if err == nil {
		db.Close()
		t.Fatal("open succeeded with a slot table larger than the file system")
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("open: %v, want ENOSPC", err)
	}
}
