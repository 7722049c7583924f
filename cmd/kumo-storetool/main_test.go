package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"kumofs/ring"
	"kumofs/store"
)

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(args, &out); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out.String()
}

// Ensure that the acceptance sequence works: create with a bucket
// number, then inform shows it.
func TestCreateInform(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.kch")
	runOK(t, "create", path, "200000")
	out := runOK(t, "inform", path)
	for _, want := range []string{"path: " + path + "\n", "bucket number: 200000\n", "record number: 0\n",
		"additional flags:\n", "alignment: 16\n", "load: 0.0%\n", "dead bytes: 0 (0.0%)\n", "file size: 1638400\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("inform lacks %q:\n%s", want, out)
		}
	}
	if err := run([]string{"create", path}, &bytes.Buffer{}); err != store.ErrExist {
		t.Fatalf("create over existing: %v", err)
	}
}

// Ensure that put, get, list, out, optimize and verify work together.
func TestCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.kch")
	runOK(t, "create", path, "64")
	runOK(t, "put", "-flags", "5", "-clock", "99", path, "k1", "v1")
	runOK(t, "put", path, "k2", "v2")
	runOK(t, "put", path, "k1", "v1b")
	if out := runOK(t, "get", path, "k1"); !strings.HasPrefix(out, "v1b\nclock: ") || !strings.Contains(out, "flags: 0\n") {
		t.Fatalf("get: %q", out)
	}
	if out := runOK(t, "list", "-pv", path); out != "k2\tv2\nk1\tv1b\n" {
		t.Fatalf("list: %q", out)
	}
	runOK(t, "out", path, "k2")
	if err := run([]string{"out", path, "k2"}, &bytes.Buffer{}); err != store.ErrNotFound {
		t.Fatalf("out missing: %v", err)
	}
	runOK(t, "optimize", path)
	out := runOK(t, "inform", path)
	if !strings.Contains(out, "bucket number: 1024\n") || !strings.Contains(out, "record number: 1\n") ||
		!strings.Contains(out, "dead bytes: 0 (0.0%)\n") {
		t.Fatalf("after optimize:\n%s", out)
	}
	runOK(t, "optimize", path, "80")
	if out := runOK(t, "inform", path); !strings.Contains(out, "bucket number: 80\n") {
		t.Fatalf("optimize 80:\n%s", out)
	}
	const small = "bucket number 1 is too small for the store's 1 records (choose more, e.g. 2, or leave it out for 2 x records)"
	if err := run([]string{"optimize", path, "1"}, &bytes.Buffer{}); err == nil || err.Error() != small {
		t.Fatalf("optimize 1: %v", err)
	}
	if out := runOK(t, "verify", path); !strings.HasSuffix(out, "ok\n") {
		t.Fatalf("verify: %q", out)
	}
	if out := runOK(t, "repair", path); !strings.Contains(out, "recovered keys: 1\n") {
		t.Fatalf("repair: %q", out)
	}
	// While held, commands that change the file refuse.
	db, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, args := range [][]string{{"optimize", path}, {"verify", path}, {"repair", path}, {"put", path, "a", "b"}} {
		if err := run(args, &bytes.Buffer{}); err != store.ErrLocked {
			t.Errorf("%v while held: %v", args, err)
		}
	}
	if out := runOK(t, "inform", path); !strings.Contains(out, "additional flags: open") {
		t.Errorf("inform while held:\n%s", out)
	}
}

// Ensure that bench write/read run with tchtest's record pattern.
func TestBench(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.kch")
	out := runOK(t, "bench", "write", path, "1000", "2000")
	if !strings.HasPrefix(out, "record number: 1000\n") {
		t.Fatalf("bench write: %q", out)
	}
	if out := runOK(t, "bench", "read", path); !strings.HasPrefix(out, "record number: 1000\nmisses: 0\n") {
		t.Fatalf("bench read: %q", out)
	}
	if out := runOK(t, "get", path, "00000042"); !strings.HasPrefix(out, "00000042\n") {
		t.Fatalf("get: %q", out)
	}
	runOK(t, "bench", "write", "-rnd", path, "1000")
	runOK(t, "bench", "read", "-rnd", path)
}

// Ensure that bad usage is one error, -h is help.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frob"}, {"create"}, {"create", "a", "b", "c"}, {"create", "p", "x"},
		{"bench", "write", "p"}, {"inform", filepath.Join(t.TempDir(), "missing")}, {"get", "-zz", "p", "k"}} {
		err := run(args, &bytes.Buffer{})
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v", args, err)
		}
	}
	if err := run([]string{"-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	if err := run([]string{"get", "-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("get -h: %v", err)
	}
}

// Ensure that the binary prints one line and exits 1 on error, and
// prints usage with status 0 on -h.
func TestExitStatus(t *testing.T) {
	if os.Getenv("KUMO_STORETOOL_MAIN") != "" {
		os.Args = append([]string{"kumo-storetool"}, strings.Fields(os.Getenv("KUMO_STORETOOL_MAIN"))...)
		main()
		os.Exit(0)
	}
	for _, tc := range []struct {
		args   string
		status int
		stderr string
		stdout string
	}{
		{"inform /nonexistent/x.kch", 1, "error: open /nonexistent/x.kch: no such file or directory\n", ""},
		{"-h", 0, "", "usage:"},
		{"--version", 0, "", "kumo-storetool kumo "},
		{"create", 1, "error: create: bad arguments\n", "usage:"},
		{"frob", 1, "error: unknown command \"frob\": bad arguments\n", "usage:"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestExitStatus$")
		cmd.Env = append(os.Environ(), "KUMO_STORETOOL_MAIN="+tc.args)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		status := 0
		if ee, ok := err.(*exec.ExitError); ok {
			status = ee.ExitCode()
		}
		if status != tc.status || stderr.String() != tc.stderr || !strings.HasPrefix(stdout.String(), tc.stdout) {
			t.Errorf("%s: status %d stderr %q stdout %q", tc.args, status, stderr.String(), stdout.String())
		}
	}
}

// Ensure that list shows a server's keys as memcached keys (without the
// hash kumofs puts in front), that get and out find a server's record by
// its memcached key, and that get shows a touched record's CAS unique.
func TestServerKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.kch")
	runOK(t, "create", path, "64")
	db, err := store.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	dbkey := func(k string) []byte {
		return append(binary.BigEndian.AppendUint64(nil, ring.Hash([]byte(k))), k...)
	}
	for _, r := range []store.Record{
		{Key: dbkey("user:1"), Value: []byte("alice"), Clock: 7 << 32, Cas: 5 << 32},
		{Key: []byte("raw\n"), Value: []byte("r"), Clock: 8 << 32}, // too short for the layout
		{Key: dbkey("gone"), Clock: 9 << 32, Tombstone: true},      // a delete: not listed
	} {
		if err := db.Put(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if out := runOK(t, "list", "-pv", path); out != "user:1\talice\nraw\n\tr\n" && out != "raw\n\tr\nuser:1\talice\n" {
		t.Fatalf("list: %q", out)
	}
	if out := runOK(t, "get", path, "gone"); !strings.Contains(out, "tombstone: true\n") {
		t.Fatalf("get of a deleted key: %q", out)
	}
	if out := runOK(t, "get", path, "user:1"); !strings.HasPrefix(out, "alice\nclock: 30064771072 ") ||
		!strings.Contains(out, "cas: 21474836480 (kept by a touch)\n") {
		t.Fatalf("get of a server's key: %q", out)
	}
	runOK(t, "out", path, "user:1")
	if err := run([]string{"get", path, "user:1"}, &bytes.Buffer{}); err != store.ErrNotFound {
		t.Fatalf("get after out: %v", err)
	}
}

// Ensure that the read-only commands never turn an empty file into a
// store, and that verify prints no figures for a store it could not check.
func TestNoStoreNoFigures(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.kch")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"list", empty}, {"get", empty, "k"}, {"out", empty, "k"}, {"verify", empty}} {
		var out bytes.Buffer
		if err := run(args, &out); !errors.Is(err, store.ErrBadHeader) || out.Len() != 0 {
			t.Fatalf("%v: %v, printed %q; want ErrBadHeader and nothing", args, err, out.String())
		}
	}
	if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
		t.Fatalf("the empty file after the commands: %v %v", fi.Size(), err)
	}
	// repair on a file with nothing of a store in it says so, and does not
	// send the operator to run repair (hunt 27d).
	garbage := filepath.Join(dir, "garbage.kch")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("garbage!"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	var rout bytes.Buffer
	err := run([]string{"repair", garbage}, &rout)
	const wantLine = "error: store: no header and no records found (not a kumo store, or nothing left to recover)"
	if !errors.Is(err, store.ErrNoRecords) || rout.Len() != 0 || errorLine(err) != wantLine {
		t.Fatalf("repair of garbage: %v, printed %q; want %q", err, rout.String(), wantLine)
	}
	path := filepath.Join(dir, "held.kch")
	db, err := store.Open(path, nil) // held, as by a running server
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out bytes.Buffer
	if err := run([]string{"verify", path}, &out); !errors.Is(err, store.ErrLocked) || out.Len() != 0 {
		t.Fatalf("verify of a held store: %v, printed %q; want ErrLocked and nothing", err, out.String())
	} else if got, want := errorLine(err), "error: the store is in use by another process (a running kumo-server: stop it, or work on a copy made with kumoctl backup): store: locked"; got != want {
		t.Fatalf("error line %q, want %q", got, want)
	}
}
