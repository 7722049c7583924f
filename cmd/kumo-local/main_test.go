package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		want   config
		code   int
		stderr string
	}{
		{args: nil, want: config{servers: 3, port: 11211, data: "./kumo-data", managers: 1}, code: -1},
		{args: []string{"-n", "5", "-t", "11311", "-data", "/tmp/x", "-v", "-M", "2"},
			want: config{servers: 5, port: 11311, data: "/tmp/x", verbose: true, managers: 2}, code: -1},
		{args: []string{"--servers=1", "--data", "d"}, want: config{servers: 1, port: 11211, data: "d", managers: 1}, code: -1},
		{args: []string{"-E"}, want: config{servers: 3, port: 11211, data: "./kumo-data", managers: 1, embedded: true}, code: -1},
		{args: []string{"-n", "0"}, code: 1, stderr: "error: argument error `-n': 1 to 100 servers: 0\n"},
		{args: []string{"-n", "x"}, code: 1, stderr: "error: argument error `-n': integer is expected: x\n"},
		{args: []string{"-t", "70000"}, code: 1, stderr: "error: argument error `-t': port 1 to 65535: 70000\n"},
		{args: []string{"-M", "3"}, code: 1, stderr: "error: argument error `-M': 1 or 2 managers: 3\n"},
		{args: []string{"extra"}, code: 1, stderr: "error: unexpected argument: extra\n"},
		{args: []string{"-h"}, code: 0},
	} {
		var stdout, stderr bytes.Buffer
		cfg, code := parse(tc.args, &stdout, &stderr)
		if code != tc.code || stderr.String() != tc.stderr {
			t.Errorf("parse(%q): code %d, stderr %q; want %d, %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
			continue
		}
		if code == -1 && cfg != tc.want {
			t.Errorf("parse(%q) = %+v, want %+v", tc.args, cfg, tc.want)
		}
		if code >= 0 && !strings.HasPrefix(stdout.String(), "usage: kumo-local") {
			t.Errorf("parse(%q): stdout %q, want the usage", tc.args, stdout.String())
		}
	}
}

func TestMissingBinaries(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"-B", dir, "-data", t.TempDir()}, &stdout, &stderr)
	want := "error: kumo-manager not found next to kumo-local in " + dir + " (run `make build`)\n"
	if code != 1 || stderr.String() != want {
		t.Fatalf("run = %d, stderr %q; want 1, %q", code, stderr.String(), want)
	}
}

func TestPortInUse(t *testing.T) {
	dir := t.TempDir()
	for _, b := range required {
		if err := os.WriteFile(filepath.Join(dir, b), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	var stdout, stderr bytes.Buffer
	code := run([]string{"-B", dir, "-t", port}, &stdout, &stderr)
	want := "error: port 127.0.0.1:" + port + " is in use; choose another with -t\n"
	if code != 1 || stderr.String() != want {
		t.Fatalf("run = %d, stderr %q; want 1, %q", code, stderr.String(), want)
	}
}
