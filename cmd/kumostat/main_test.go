package main

import (
	"bytes"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) {
	// Ruby prints times in the local zone; the golden files are in UTC.
	time.Local = time.UTC
	os.Exit(m.Run())
}

// goldenClock is the timestamp of kumofs-golden.md: 2026-11-25 17:44:50 clock 4.
var goldenClock = uint64(time.Date(2026, 11, 25, 17, 44, 50, 0, time.UTC).Unix())<<32 | 4

func seed(clock uint64, nodes ...ring.Node) []byte {
	return ring.New(nodes, clock).AppendSeed(nil)
}

// fake is an in-process kumo-server or kumo-manager built on proto/rpc: it
// answers GetStatus(code) from status and GetNodesInfo from nodesInfo.
type fake struct {
	addr      ring.Addr
	status    map[uint64][]byte // GetStatus code -> msgpack answer
	nodesInfo []byte
	fail      error // answer every call with this error
}

func (f *fake) serve(req *rpc.Request) {
	if f.fail != nil {
		req.ReplyError(f.fail)
		return
	}
	switch req.Method {
	case wire.MgrGetNodesInfo:
		if f.nodesInfo != nil {
			req.ReplyRaw(f.nodesInfo)
			return
		}
	case wire.SrvGetStatus:
		n, p, err := msgpack.ReadArrayHeader(req.Params)
		if err != nil || n != 1 {
			break
		}
		code, _, err := msgpack.ReadUint(p)
		if err != nil {
			break
		}
		if v, ok := f.status[code]; ok {
			req.ReplyRaw(v)
		} else {
			req.Reply(nil) // unknown codes give nil, as in kumofs
		}
		return
	}
	req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol})
}

// start serves f on a kernel-chosen port of 127.0.0.1 and sets f.addr.
func (f *fake) start(t *testing.T) *fake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ring.AddrFrom4([4]byte{127, 0, 0, 1}, uint16(ln.Addr().(*net.TCPAddr).Port))
	srv := &rpc.Server{Handler: rpc.HandlerFunc(f.serve)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

func u(v uint64) []byte { return msgpack.AppendUint(nil, v) }

// goldenStatus is the answers of the kumofs server in kumofs-golden.md.
func goldenStatus(rhs, whs []byte, replace []byte) map[uint64][]byte {
	m := map[uint64][]byte{
		wire.StatPID:       u(26129),
		wire.StatUptime:    u(176),
		wire.StatTime:      u(1795628857),
		wire.StatVersion:   msgpack.AppendString(nil, "0.4.13 revision "),
		wire.StatCmdGet:    u(19),
		wire.StatCmdSet:    u(2),
		wire.StatCmdDelete: u(2),
		wire.StatDBItems:   u(13),
		wire.StatRHS:       rhs,
		wire.StatWHS:       whs,
	}
	if replace != nil {
		m[wire.StatReplace] = replace
	}
	return m
}

var (
	n1 = ring.AddrFrom4([4]byte{127, 0, 0, 1}, 19801)
	n2 = ring.AddrFrom4([4]byte{127, 0, 0, 1}, 19802)
	n3 = ring.AddrFrom4([4]byte{127, 0, 0, 1}, 19803)
	hs = seed(goldenClock, ring.Node{Addr: n3, Active: true}, ring.Node{Addr: n2, Active: true}, ring.Node{Addr: n1, Active: false})
)

func TestGoldenServer(t *testing.T) {
	newer := seed(goldenClock+1, ring.Node{Addr: n3, Active: true}, ring.Node{Addr: n2, Active: true})
	for _, tc := range []struct {
		name   string
		cmd    string
		status map[uint64][]byte
		fail   error
		code   int
		stderr string
	}{
		{name: "pid", cmd: "pid"},
		{name: "uptime", cmd: "uptime"},
		{name: "time", cmd: "time"},
		{name: "version", cmd: "version"},
		{name: "cmd_get", cmd: "cmd_get"},
		{name: "cmd_set", cmd: "cmd_set"},
		{name: "cmd_delete", cmd: "cmd_delete"},
		{name: "items", cmd: "items"},
		{name: "stats", cmd: "stats"},
		{name: "rhs", cmd: "rhs"},
		{name: "whs", cmd: "whs"},
		{name: "hscheck", cmd: "hscheck"},
		{name: "hscheck_false", cmd: "hscheck", status: goldenStatus(hs, newer, nil)},
		{name: "replstat", cmd: "replstat", status: goldenStatus(hs, hs, u(0))},
		{name: "replstat_inactive", cmd: "replstat", status: goldenStatus(hs, hs, u(wire.ReplInactive|wire.ReplCopying))},
		{name: "replstat_deleting", cmd: "replstat", status: goldenStatus(hs, hs, u(wire.ReplDeleting|wire.ReplCopying|wire.ReplWait))},
		{name: "replstat_copying", cmd: "replstat", status: goldenStatus(hs, hs, u(wire.ReplCopying|wire.ReplWait))},
		{name: "replstat_wait", cmd: "replstat", status: goldenStatus(hs, hs, u(wire.ReplWait))},
		{name: "replstat_nil", cmd: "replstat"},
		{name: "items_error", cmd: "items", fail: &rpc.Error{Code: rpc.CodeServer}, code: 1, stderr: "SERVER_ERROR"},
		{name: "rhs_bad", cmd: "rhs", status: goldenStatus(u(1), hs, nil), code: 1, stderr: "bad reply"},
		{name: "items_bad", cmd: "items", status: map[uint64][]byte{wire.StatDBItems: msgpack.AppendArrayHeader(nil, 0)}, code: 1, stderr: "bad reply"},
		{name: "unknown_command", cmd: "frobnicate", code: 1, stderr: "unknown command frobnicate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.status
			if st == nil {
				st = goldenStatus(hs, hs, nil)
			}
			f := (&fake{status: st, fail: tc.fail}).start(t)
			var stdout, stderr bytes.Buffer
			code := run([]string{f.addr.String(), tc.cmd}, &stdout, &stderr)
			checkRun(t, code, stderr.String(), tc.code, tc.stderr)
			checkGolden(t, tc.name, stdout.Bytes())
		})
	}
}

func checkRun(t *testing.T, code int, stderr string, wantCode int, wantStderr string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit status %d, want %d (stderr %q)", code, wantCode, stderr)
	}
	if wantStderr == "" && stderr != "" {
		t.Errorf("stderr %q, want none", stderr)
	}
	if wantStderr != "" && (!strings.HasPrefix(stderr, "error: ") || !strings.Contains(stderr, wantStderr) ||
		strings.Count(stderr, "\n") != 1) {
		t.Errorf("stderr %q, want one line \"error: ...%s...\"", stderr, wantStderr)
	}
}

func TestGoldenManager(t *testing.T) {
	// Three servers, the first active, the second fault (skipped), the
	// third active but down.
	s1 := (&fake{status: goldenStatus(hs, hs, u(0))}).start(t)
	s2 := (&fake{status: goldenStatus(hs, hs, u(0))}).start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ring.AddrFrom4([4]byte{127, 0, 0, 1}, uint16(ln.Addr().(*net.TCPAddr).Port))
	ln.Close()
	info := msgpack.AppendArrayHeader(nil, 2)
	info = append(info, seed(goldenClock, ring.Node{Addr: s1.addr, Active: true}, ring.Node{Addr: s2.addr}, ring.Node{Addr: down, Active: true})...)
	info = msgpack.AppendArrayHeader(info, 0)
	mgr := (&fake{nodesInfo: info}).start(t)
	// Ports are kernel-chosen; the golden files name them 19801..19803.
	rename := strings.NewReplacer(s1.addr.String(), "127.0.0.1:19801", s2.addr.String(), "127.0.0.1:19802", down.String(), "127.0.0.1:19803")

	for _, tc := range []struct {
		name string
		cmd  string
	}{
		{"m_items", "items"},
		{"m_stats", "stats"},
		{"m_replstat", "replstat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"-m", mgr.addr.String(), tc.cmd}, &stdout, &stderr)
			if code != 1 || stderr.Len() != 0 {
				t.Errorf("exit status %d, stderr %q; want 1 (a server is down) and no stderr", code, stderr.String())
			}
			out := rename.Replace(stdout.String())
			// The connection error text is the system's; keep its head.
			if i := strings.Index(out, "127.0.0.1:19803:  error: cannot reach 127.0.0.1:19803: "); i >= 0 {
				out = out[:i] + "127.0.0.1:19803:  error: cannot reach 127.0.0.1:19803: ...\n"
			}
			checkGolden(t, tc.name, []byte(out))
		})
	}

	// All up: exit 0.
	info = msgpack.AppendArrayHeader(nil, 2)
	info = append(info, seed(goldenClock, ring.Node{Addr: s1.addr, Active: true})...)
	info = msgpack.AppendArrayHeader(info, 0)
	mgr = (&fake{nodesInfo: info}).start(t)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--manager", mgr.addr.String(), "items"}, &stdout, &stderr); code != 0 ||
		stdout.String() != s1.addr.String()+":  13\n" {
		t.Errorf("run = %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}

	// A manager that cannot be reached.
	stdout.Reset()
	stderr.Reset()
	code := run([]string{"-m", down.String(), "items"}, &stdout, &stderr)
	checkRun(t, code, stderr.String(), 1, "cannot reach "+down.String())
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stdout differs from %s\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// The golden files agree with kumofs 0.4.13's output in kumofs-golden.md.
func TestGoldenMatchesKumofs(t *testing.T) {
	for name, want := range map[string]string{
		"pid":        "26129\n",
		"version":    "0.4.13 revision \n",
		"cmd_get":    "19\n",
		"cmd_set":    "2\n",
		"cmd_delete": "2\n",
		"items":      "13\n",
		"hscheck":    "true\n",
		"replstat":   "ready\n",
		"stats": "STAT pid 26129\nSTAT uptime 176\nSTAT time 1795628857\nSTAT cmd_get 19\nSTAT cmd_set 2\n" +
			"STAT cmd_delete 2\nSTAT curr_items 13\nEND\n",
	} {
		got, err := os.ReadFile(filepath.Join("testdata", name+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s.golden = %q, want kumofs's %q", name, got, want)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 1, "error: too few arguments\n"},
		{[]string{"-m", "127.0.0.1"}, 1, "error: too few arguments\n"},
		{[]string{"127.0.0.1", "items", "x"}, 1, "error: unexpected argument: x\n"},
		{[]string{"-x", "127.0.0.1", "items"}, 1, "error: unexpected argument: -x\n"},
		{[]string{"-h"}, 0, ""},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || stderr.String() != tc.stderr {
			t.Errorf("run(%q) = %d, stderr %q; want %d, %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
		checkGolden(t, "usage", stdout.Bytes())
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "kumostat kumo ") {
		t.Errorf("--version: %d %q", code, stdout.String())
	}
}

func TestSilentServerTimesOut(t *testing.T) {
	old := callTimeout
	callTimeout = 300 * time.Millisecond
	defer func() { callTimeout = old }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &rpc.Server{Handler: rpc.HandlerFunc(func(*rpc.Request) {})} // never answers
	go srv.Serve(ln)
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := run([]string{ln.Addr().String(), "pid"}, &stdout, &stderr)
	checkRun(t, code, stderr.String(), 1, ln.Addr().String())
	if stdout.Len() != 0 {
		t.Errorf("stdout %q", stdout.String())
	}
}

func TestValueString(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
		err  bool
	}{
		{msgpack.AppendNil(nil), "nil", false},
		{msgpack.AppendBool(nil, true), "true", false},
		{msgpack.AppendInt(nil, -3), "-3", false},
		{msgpack.AppendUint(nil, 1<<63), "9223372036854775808", false},
		{msgpack.AppendString(nil, "0.4.13 revision "), "0.4.13 revision ", false},
		{msgpack.AppendFloat64(nil, 1), "", true},
		{append(msgpack.AppendUint(nil, 1), 1), "", true},
		{nil, "", true},
		{[]byte{0xcd, 0x01}, "", true},
	} {
		got, err := valueString(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("valueString(% x) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func FuzzValueString(f *testing.F) {
	f.Add(msgpack.AppendUint(nil, 13))
	f.Add(msgpack.AppendString(nil, "0.4.13 revision "))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := valueString(b)
		if err != nil && s != "" {
			t.Fatalf("valueString = %q with error %v", s, err)
		}
	})
}
