package server

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"kumofs/internal/logging"
	"kumofs/ring"
	"kumofs/store"
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
	taken := ln.Addr().(*net.TCPAddr).Port
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freePort := free.Addr().(*net.TCPAddr).Port
	free.Close()
	self, _ := ring.ParseAddr(net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort)), 19800)
	for _, c := range []struct {
		name   string
		listen string
		self   ring.Addr
		stream int
	}{
		{"main port", ln.Addr().String(), testSelf, 0},
		{"stream port (-L)", "", self, taken}, // hunt 27d: left db.kch and db.kch.ids
	} {
		path := filepath.Join(t.TempDir(), "db.kch")
		_, err = New(Config{Self: c.self, Listen: c.listen, StreamPort: c.stream, StorePath: path, Log: logging.New(io.Discard, logging.Info)})
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("%s taken: New = %v, want EADDRINUSE", c.name, err)
		}
		entries, err := os.ReadDir(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("%s taken: left behind: %s", c.name, e.Name())
		}
	}
}

// Ensure that a start that fails on a file that is not a store (garbage, a
// directory) leaves nothing next to it (hunt 27d: <path>.current was left).
func TestUnopenableStoreLeavesNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(path string) error
		want error
	}{
		{"garbage", func(p string) error { return os.WriteFile(p, make([]byte, 5000), 0o644) }, store.ErrBadHeader},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }, syscall.EISDIR},
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "db.kch")
		if err := c.make(path); err != nil {
			t.Fatal(err)
		}
		srv, err := New(Config{Self: testSelf, Listen: "127.0.0.1:0", StorePath: path, Log: logging.New(io.Discard, logging.Info)})
		if err == nil {
			srv.Close()
			t.Fatalf("%s: New succeeded", c.name)
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: New = %v, want %v", c.name, err, c.want)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "db.kch" {
				t.Errorf("%s: left behind: %s", c.name, e.Name())
			}
		}
	}
}
