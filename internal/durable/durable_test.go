package durable

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Ensure that WriteFile replaces the file's contents, leaves no temporary
// file, and on a failure leaves the old contents and no temporary file.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, data := range []string{"first", "second, longer", ""} {
		if err := WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != data {
			t.Fatalf("after WriteFile(%q): %q, %v", data, got, err)
		}
		if _, err := os.Stat(p + ".tmp"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("temporary file left: %v", err)
		}
	}
	// The rename fails: path is a non-empty folder.
	q := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(q, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(q, []byte("x"), 0o644); err == nil {
		t.Fatal("WriteFile over a folder succeeded")
	}
	if _, err := os.Stat(q + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left after a failure: %v", err)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("SyncDir of a missing folder succeeded")
	}
}
