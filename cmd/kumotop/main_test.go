package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// fake is an in-process kumo-server or kumo-manager built on proto/rpc.
// Each sample (a StatCmdGet query) advances its counters by get/set/del.
type fake struct {
	addr      ring.Addr
	nodesInfo []byte     // GetNodesInfo answer (a manager)
	fail      *rpc.Error // answer every call with this error
	hang      bool       // never answer

	mu     sync.Mutex // protects status
	status map[uint64][]byte
	step   [3]uint64 // added to cmd_get, cmd_set, cmd_delete per sample
	counts [3]uint64
}

func (f *fake) serve(req *rpc.Request) {
	if f.hang {
		return
	}
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
		f.mu.Lock()
		defer f.mu.Unlock()
		switch code {
		case wire.StatCmdGet, wire.StatCmdSet, wire.StatCmdDelete:
			i := code - wire.StatCmdGet
			if i == 0 {
				for j := range f.counts {
					f.counts[j] += f.step[j]
				}
			}
			req.ReplyRaw(msgpack.AppendUint(nil, f.counts[i]))
			return
		}
		if v, ok := f.status[code]; ok {
			req.ReplyRaw(v)
		} else {
			req.Reply(nil)
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
	srv := &rpc.Server{Handler: rpc.HandlerFunc(f.serve), Logf: func(string, ...any) {}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

// deadAddr returns an address of 127.0.0.1 where nothing listens.
func deadAddr(t *testing.T) ring.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return ring.AddrFrom4([4]byte{127, 0, 0, 1}, uint16(port))
}

func u(v uint64) []byte { return msgpack.AppendUint(nil, v) }

func serverStatus(items uint64, clock uint64, replace []byte) map[uint64][]byte {
	m := map[uint64][]byte{wire.StatDBItems: u(items), wire.StatClockTime: u(clock)}
	if replace != nil {
		m[wire.StatReplace] = replace
	}
	return m
}

// steppedClock makes now return t0, t0+0.5s, t0+1s, ... for the test.
func steppedClock(t *testing.T) {
	t.Helper()
	next := t0
	now = func() time.Time {
		at := next
		next = next.Add(500 * time.Millisecond)
		return at
	}
	t.Cleanup(func() { now = time.Now })
}

// normalize replaces the kernel-chosen ports (always 5 digits on Linux)
// by names of the same width, and the connection error text of dead
// servers, which comes from the OS.
func normalize(out string, names map[ring.Addr]string) string {
	for a, name := range names {
		out = strings.ReplaceAll(out, a.String(), name)
	}
	return regexp.MustCompile(`cannot reach: .*`).ReplaceAllString(out, "cannot reach: <dial error>")
}

// stderrMark separates a run's standard output from its error output in
// the golden files.
const stderrMark = "--- stderr\n"

func runTop(args ...string) (int, string, string) {
	var o, e bytes.Buffer
	code := run(args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

func TestSampleServers(t *testing.T) {
	steppedClock(t)
	s1 := (&fake{step: [3]uint64{10, 5, 1}, status: serverStatus(42, clock0, u(0))}).start(t)
	s2 := (&fake{step: [3]uint64{0, 100, 0}, status: serverStatus(7, clock0+1<<32+99, u(wire.ReplCopying))}).start(t)
	s3 := (&fake{fail: &rpc.Error{Msg: "server not ready"}}).start(t)
	s4 := (&fake{status: map[uint64][]byte{wire.StatDBItems: msgpack.AppendString(nil, "many")}}).start(t)
	dead := deadAddr(t)
	names := map[ring.Addr]string{s1.addr: "127.0.0.1:SRV01", s2.addr: "127.0.0.1:SRV02", s3.addr: "127.0.0.1:SRV03",
		s4.addr: "127.0.0.1:SRV04", dead: "127.0.0.1:DEAD0"}
	for _, width := range []string{"80", "160"} {
		code, out, errOut := runTop("-n", "3", "-i", "0.001", "-w", width,
			s1.addr.String(), s2.addr.String(), s3.addr.String(), s4.addr.String(), dead.String())
		if code != 1 { // the last frame shows errors
			t.Errorf("exit %d", code)
		}
		golden(t, "run_servers_"+width, []byte(normalize(out+stderrMark+errOut, names)))
	}
}

func TestSampleManager(t *testing.T) {
	steppedClock(t)
	s1 := (&fake{step: [3]uint64{1, 2, 3}, status: serverStatus(5, clock0, u(wire.ReplWait))}).start(t)
	s2 := (&fake{step: [3]uint64{0, 0, 0}, status: serverStatus(0, clock0, u(wire.ReplInactive|wire.ReplCopying))}).start(t)
	dead := deadAddr(t)
	ws := ring.New([]ring.Node{{Addr: s2.addr, Active: true}, {Addr: dead, Active: false}, {Addr: s1.addr, Active: true}}, clock0)
	info := msgpack.AppendArrayHeader(nil, 2)
	info = ws.AppendSeed(info)
	info = msgpack.AppendArrayHeader(info, 0)
	mgr := (&fake{nodesInfo: info}).start(t)
	names := map[ring.Addr]string{s1.addr: "127.0.0.1:SRV01", s2.addr: "127.0.0.1:SRV02", dead: "127.0.0.1:DEAD0",
		mgr.addr: "127.0.0.1:MGR00"}
	code, out, errOut := runTop("-m", mgr.addr.String(), "-n", "2", "-i", "0.001", "-w", "130")
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	golden(t, "run_manager", []byte(normalize(out+stderrMark+errOut, names)))

	// Without the dead server the run ends well.
	ws = ring.New([]ring.Node{{Addr: s1.addr, Active: true}}, clock0)
	info = msgpack.AppendArrayHeader(nil, 2)
	info = ws.AppendSeed(info)
	mgr2 := (&fake{nodesInfo: msgpack.AppendArrayHeader(info, 0)}).start(t)
	if code, _, errOut := runTop("-m", mgr2.addr.String(), "-n", "1", "-w", "80"); code != 0 || errOut != "" {
		t.Errorf("healthy cluster: exit %d, stderr %q", code, errOut)
	}
}

// TestHungServer: a server that never answers shows a timeout in its row
// after the sample deadline, and does not hold up the other rows.
func TestHungServer(t *testing.T) {
	steppedClock(t)
	sampleTimeout = 100 * time.Millisecond
	t.Cleanup(func() { sampleTimeout = time.Second })
	hung := (&fake{hang: true}).start(t)
	good := (&fake{status: serverStatus(1, clock0, u(0))}).start(t)
	names := map[ring.Addr]string{hung.addr: "127.0.0.1:HUNG0", good.addr: "127.0.0.1:GOOD0"}
	code, out, errOut := runTop("-n", "1", "-w", "130", hung.addr.String(), good.addr.String())
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	golden(t, "run_hung", []byte(normalize(out+stderrMark+errOut, names)))
}

func TestManagerErrors(t *testing.T) {
	steppedClock(t)
	dead := deadAddr(t)
	bad := (&fake{nodesInfo: msgpack.AppendArrayHeader(nil, 0)}).start(t)
	refused := (&fake{fail: &rpc.Error{Code: rpc.CodeProtocol}}).start(t)
	names := map[ring.Addr]string{dead: "127.0.0.1:DEAD0", bad.addr: "127.0.0.1:BAD00", refused.addr: "127.0.0.1:REF00"}
	for _, tc := range []struct {
		name string
		mgr  ring.Addr
	}{
		{"dead", dead},
		{"bad_reply", bad.addr},
		{"error_reply", refused.addr},
	} {
		code, out, errOut := runTop("-m", tc.mgr.String(), "-n", "1", "-w", "80")
		if code != 1 {
			t.Errorf("%s: exit %d", tc.name, code)
		}
		golden(t, "manager_"+tc.name, []byte(normalize(out+stderrMark+errOut, names)))
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{nil, "error: too few arguments\n"},
		{[]string{"-n", "1"}, "error: too few arguments\n"},
		{[]string{"-m", "127.0.0.1", "b"}, "error: unexpected argument: b\n"},
		{[]string{"-m", "127.0.0.1:x"}, "error: argument error `-m': ring: bad address: invalid port number: 127.0.0.1:x\n"},
		{[]string{"-m"}, "error: argument error `-m': value is required\n"},
		{[]string{"-n", "-1", "a"}, "error: -n must not be negative\n"},
		{[]string{"-w", "-1", "a"}, "error: -w must not be negative\n"},
		{[]string{"-i", "0", "a"}, "error: -i must be positive\n"},
		{[]string{"a", "-n", "1"}, "error: options go before the addresses: -n\n"},
	} {
		code, out, errOut := runTop(tc.args...)
		if code != 1 || errOut != tc.stderr || !strings.HasPrefix(out, synopsis+"\n") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q, want 1, usage, %q", tc.args, code, out, errOut, tc.stderr)
		}
	}
	code, out, errOut := runTop("-h")
	if code != 0 || !strings.HasPrefix(out, synopsis+"\n") || errOut != "" {
		t.Errorf("-h: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runTop("-n", "1", "no such host name.invalid:x")
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "error: ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("bad address: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// eofReader returns io.EOF forever, like a polling terminal with no keys.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func TestReadKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		r     io.Reader
		quits bool
	}{
		{"q", strings.NewReader("abcq"), true},
		{"Q", strings.NewReader("Q"), true},
		{"ctrl-c", strings.NewReader("x\x03"), true},
		{"one byte", iotest.OneByteReader(strings.NewReader("hello q")), true},
		{"half", iotest.HalfReader(strings.NewReader("0123456789q")), true},
		{"no q", strings.NewReader("hello world"), false},
		{"error", iotest.ErrReader(io.ErrUnexpectedEOF), false},
	} {
		quit := false
		readKeys(tc.r, false, func() { quit = true }, make(chan struct{}))
		if quit != tc.quits {
			t.Errorf("%s: quit %v, want %v", tc.name, quit, tc.quits)
		}
	}

	// A polling reader keeps reading through EOF until done is closed.
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		readKeys(eofReader{}, true, func() { t.Error("quit without a key") }, done)
		close(finished)
	}()
	select {
	case <-finished:
		t.Fatal("polling reader stopped at EOF")
	default:
	}
	close(done)
	<-finished
}

// TestScreenTTY renders two frames in full-screen mode into a buffer.
func TestScreenTTY(t *testing.T) {
	var buf bytes.Buffer
	scr := &screen{w: &buf, tty: nil, width: 80}
	f := testFrames()["manager"]
	if err := scr.show(f); err != nil {
		t.Fatal(err)
	}
	if err := scr.show(f); err != nil {
		t.Fatal(err)
	}
	golden(t, "plain_two_frames", buf.Bytes())

	buf.Reset()
	r, w, err := osPipe(t)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	scr = &screen{w: &buf, tty: w, width: 80}
	scr.enter()
	if err := scr.show(f); err != nil {
		t.Fatal(err)
	}
	scr.leave()
	scr.leave() // a second leave writes nothing
	golden(t, "tty_frame", buf.Bytes())
}

func osPipe(t *testing.T) (*os.File, *os.File, error) { return os.Pipe() }
