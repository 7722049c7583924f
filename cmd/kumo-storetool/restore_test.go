package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"kumofs/store"
)

// putAll writes key=value pairs into a new store at path.
func putAll(t *testing.T, path string, kv ...string) {
	t.Helper()
	db, err := store.Open(path, &store.Options{Sync: store.SyncNone, Buckets: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < len(kv); i += 2 {
		if err := db.Put(&store.Record{Key: []byte(kv[i]), Value: []byte(kv[i+1]), Clock: uint64(i+1) << 32}); err != nil {
			t.Fatal(err)
		}
	}
}

// Ensure that restore puts the backup's records in place of the store's,
// removes the flush and current files (which would hide or drop the
// restored records: hunt 27d) and keeps the request-id file.
func TestRestore(t *testing.T) {
	dir := t.TempDir()
	backup, db := filepath.Join(dir, "db-20261128"), filepath.Join(dir, "db")
	putAll(t, backup, "a", "1", "b", "2")
	putAll(t, db, "c", "3")
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(backup, old, old); err != nil {
		t.Fatal(err)
	}
	for _, side := range []string{".flush", ".current", ".ids"} {
		if err := os.WriteFile(db+side, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := runOK(t, "restore", backup, db)
	want := "restored " + backup + " to " + db + ": 2 records\nremoved " + db + ".flush\nremoved " + db + ".current\n"
	if out != want {
		t.Fatalf("restore printed %q, want %q", out, want)
	}
	if got := runOK(t, "list", "-pv", db); got != "a\t1\nb\t2\n" {
		t.Fatalf("restored store lists %q", got)
	}
	for side, want := range map[string]bool{".flush": false, ".current": false, ".ids": true, ".restore": false} {
		if _, err := os.Stat(db + side); (err == nil) != want {
			t.Errorf("%s after restore: %v, want present=%v", side, err, want)
		}
	}
	if fi, err := os.Stat(db); err != nil || time.Since(fi.ModTime()) > time.Hour {
		t.Errorf("restored store's modification time %v (%v): want now, not the backup's", fi.ModTime(), err)
	}
	// Into a missing store (a new machine): nothing to remove.
	fresh := filepath.Join(dir, "new", "db")
	if err := os.Mkdir(filepath.Dir(fresh), 0o755); err != nil {
		t.Fatal(err)
	}
	if out := runOK(t, "restore", backup, fresh); out != "restored "+backup+" to "+fresh+": 2 records\n" {
		t.Fatalf("restore to a new path printed %q", out)
	}
}

// Ensure that restore changes nothing when the store is held by a
// running server, the backup is not a store, or both name one file.
func TestRestoreRefuses(t *testing.T) {
	dir := t.TempDir()
	backup, db := filepath.Join(dir, "backup"), filepath.Join(dir, "db")
	putAll(t, backup, "a", "1")
	putAll(t, db, "c", "3")
	if err := os.WriteFile(db+".flush", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("x"), 4096), 0o644); err != nil {
		t.Fatal(err)
	}

	held, err := store.Open(db, nil) // as by a running server
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"restore", backup, db}, &out); !errors.Is(err, store.ErrLocked) || out.Len() != 0 {
		t.Errorf("restore over a held store: %v, printed %q; want ErrLocked and nothing", err, out.String())
	}
	held.Close()
	if err := run([]string{"restore", garbage, db}, &out); !errors.Is(err, store.ErrBadHeader) || out.Len() != 0 {
		t.Errorf("restore of garbage: %v, printed %q; want ErrBadHeader and nothing", err, out.String())
	}
	if err := run([]string{"restore", db, db}, &out); err == nil || out.Len() != 0 {
		t.Errorf("restore of a store onto itself: %v, printed %q", err, out.String())
	}
	if err := run([]string{"restore", backup}, &out); !errors.Is(err, errUsage) {
		t.Errorf("restore with one path: %v, want errUsage", err)
	}
	if got := runOK(t, "list", db); got != "c\n" {
		t.Errorf("store after refused restores lists %q", got)
	}
	if _, err := os.Stat(db + ".flush"); err != nil {
		t.Errorf("flush file after refused restores: %v", err)
	}
}
