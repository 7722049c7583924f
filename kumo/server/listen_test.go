package server

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"kumofs/internal/logging"
)

// Ensure that a server whose port is taken fails without creating its
// store (an operator's typo must not leave a new, empty store file that a
// later start would take for the server's data).
func TestTakenPortCreatesNoStore(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	path := filepath.Join(t.TempDir(), "db.kch")
	_, err = New(Config{Self: testSelf, Listen: ln.Addr().String(), StorePath: path, Log: logging.New(io.Discard, logging.Info)})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("New on a taken port = %v, want EADDRINUSE", err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}
