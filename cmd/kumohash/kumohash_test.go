package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kumofs/ring"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var servers = []string{"127.0.0.1:19803", "127.0.0.1:19802", "127.0.0.1:19801"}

// managerSpace is what the fake manager returns: the golden cluster with
// 19802 marked fault.
func managerSpace(t *testing.T) *ring.HashSpace {
	var nodes []ring.Node
	for _, s := range servers {
		a, err := ring.ParseAddr(s, 0)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, ring.Node{Addr: a, Active: s != "127.0.0.1:19802"})
	}
	return ring.New(nodes, 4)
}

func TestGolden(t *testing.T) {
	offline := func(tail ...string) []string { return append(append(append([]string{}, servers...), "--"), tail...) }
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		// Outputs of kumofs 0.4.13 (kumofs-golden.md).
		{"hash", []string{"-m", "127.0.0.1", "hash", "a", "k1", "foo"}, 0, ""},
		{"assign", offline("assign", "a", "k1", "foo"), 0, ""},
		{"dump", offline("dump"), 0, ""},
		// The manager form keeps fault servers in the owner list.
		{"assign_manager_fault", []string{"-m", "127.0.0.1", "assign", "a", "k1", "foo"}, 0, ""},
		{"dump_manager", []string{"--manager", "127.0.0.1:19700", "dump"}, 0, ""},
		{"hash_offline", offline("hash", "a", "-m", "--"), 0, ""},
		{"assign_one_server", []string{"127.0.0.1", "--", "assign", "a"}, 0, ""},
		{"assign_no_server", []string{"--", "assign", "a"}, 0, ""},
		{"usage_empty", nil, 1, "error: missing -- and command after the server list\n"},
		{"usage_no_dash", servers, 1, "error: missing -- and command after the server list\n"},
		{"usage_no_command", offline(), 1, "error: missing command\n"},
		{"usage_unknown", offline("frob"), 1, "error: unknown command frob\n"},
		{"usage_hash_no_key", []string{"-m", "x", "hash"}, 1, "error: hash: missing KEY\n"},
		{"usage_dump_key", offline("dump", "a"), 1, "error: dump takes no KEY: a\n"},
		{"usage_bad_server", []string{"127.0.0.1:x", "--", "dump"}, 1, "error: ring: bad address: invalid port number: 127.0.0.1:x\n"},
		{"usage_bad_option", []string{"-x"}, 1, "error: unexpected argument: -x\n"},
		{"help", []string{"--help"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			fetch := func(ctx context.Context, mgr string) (*ring.HashSpace, error) {
				return managerSpace(t), nil
			}
			code := run(tc.args, &stdout, &stderr, fetch)
			if code != tc.code || stderr.String() != tc.stderr {
				t.Errorf("exit %d stderr %q, want %d %q", code, stderr.String(), tc.code, tc.stderr)
			}
			name := tc.name + ".golden"
			if strings.HasPrefix(tc.name, "usage_") || tc.name == "help" {
				name = "usage.golden"
			}
			golden(t, name, stdout.Bytes())
		})
	}
}

// TestGoldenKumofs checks the lines quoted in kumofs-golden.md directly.
func TestGoldenKumofs(t *testing.T) {
	var out bytes.Buffer
	run(append(append(servers[:3:3], "--"), "dump"), &out, &out, nil)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 384 || lines[0] != "002de3615913c491  127.0.0.1:19803" {
		t.Errorf("dump: %d lines, first %q", len(lines), lines[0])
	}
	out.Reset()
	run(append(append(servers[:3:3], "--"), "assign", "a", "k1", "foo"), &out, &out, nil)
	if want := `fca7a5fa37e4f786  a
  0: 127.0.0.1:19803
  1: 127.0.0.1:19801
  2: 127.0.0.1:19802
a2bfc3c15919aba2  k1
  0: 127.0.0.1:19801
  1: 127.0.0.1:19802
  2: 127.0.0.1:19803
db0f3feab5c7ee0b  foo
  0: 127.0.0.1:19803
  1: 127.0.0.1:19802
  2: 127.0.0.1:19801
`; out.String() != want {
		t.Errorf("assign:\n%s", out.String())
	}
	out.Reset()
	run([]string{"-m", "127.0.0.1", "hash", "a", "k1", "foo"}, &out, &out, nil)
	if want := "fca7a5fa37e4f786  a\na2bfc3c15919aba2  k1\ndb0f3feab5c7ee0b  foo\n"; out.String() != want {
		t.Errorf("hash:\n%s", out.String())
	}
}

func TestManagerError(t *testing.T) {
	var stdout, stderr bytes.Buffer
	var asked string
	fetch := func(ctx context.Context, mgr string) (*ring.HashSpace, error) {
		asked = mgr
		return nil, errors.New("connection refused")
	}
	code := run([]string{"-m", "127.0.0.1:1", "dump"}, &stdout, &stderr, fetch)
	if code != 1 || stdout.Len() != 0 || stderr.String() != "error: connection refused\n" || asked != "127.0.0.1:1" {
		t.Errorf("code %d stdout %q stderr %q asked %q", code, stdout.String(), stderr.String(), asked)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stdout differs from %s:\n%s", path, got)
	}
}
