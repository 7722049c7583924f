package localcluster

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if code := fakeMain(); code >= 0 {
		os.Exit(code)
	}
	Main(m)
}

// fakeProc returns a Proc that runs this test binary as the fake role.
func fakeProc(t *testing.T, role string, args ...string) *Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), role+".log")
	p := &Proc{
		Name:    role,
		Path:    exe,
		Args:    append([]string{"-o", log}, args...),
		LogPath: log,
		Env:     []string{envFake + "=" + role},
	}
	t.Cleanup(func() { p.Kill() })
	return p
}

func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for range 5 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p <= 0 || p > 65535 {
			t.Fatalf("FreePort = %d", p)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d from FreePort is not free: %v", p, err)
		}
		if PortFree(p) {
			t.Errorf("PortFree(%d) = true while it is listened on", p)
		}
		ln.Close()
		if !PortFree(p) {
			t.Errorf("PortFree(%d) = false after close", p)
		}
	}
	if len(seen) < 2 {
		t.Errorf("FreePort returned the same port every time: %v", seen)
	}
}

func TestPortOrSkipsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	taken := map[int]bool{}
	p, err := portOr(busy, taken)
	if err != nil || p == busy {
		t.Fatalf("portOr(busy %d) = %d, %v; want another port", busy, p, err)
	}
	free, _ := FreePort()
	q, err := portOr(free, taken)
	if err != nil || q != free {
		t.Fatalf("portOr(free %d) = %d, %v; want it", free, q, err)
	}
	r, err := portOr(free, taken)
	if err != nil || r == free {
		t.Fatalf("portOr(taken %d) = %d, %v; want another port", free, r, err)
	}
}

func TestProcStopGraceful(t *testing.T) {
	p := fakeProc(t, "sleeper")
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop before Start = %v", err)
	}
	if p.Alive() || p.Pid() != 0 {
		t.Fatal("not started but Alive or Pid set")
	}
	if err := p.Wait(); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Wait before Start = %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Start = %v, want ErrRunning", err)
	}
	if err := p.WaitLog("ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if !p.Alive() || p.Pid() <= 0 {
		t.Fatalf("Alive=%v Pid=%d after ready", p.Alive(), p.Pid())
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop = %v, want clean exit", err)
	}
	if p.Alive() {
		t.Fatal("Alive after Stop")
	}
	if !strings.Contains(p.Tail(1), "stopping") {
		t.Fatalf("last log line %q, want the SIGTERM handler's", p.Tail(1))
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("second Stop = %v", err)
	}
}

func TestProcStopEscalatesToKill(t *testing.T) {
	p := fakeProc(t, "sleeper", "-ignore-term")
	p.StopTimeout = 200 * time.Millisecond
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLog("ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	err := p.Stop()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Stop = %v, want a 'killed' error", err)
	}
	if p.Alive() {
		t.Fatal("Alive after Stop")
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("Wait = %v, want killed by SIGKILL", err)
	}
}

// procGone reports whether pid no longer runs (gone, or a zombie).
func procGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func TestProcKillTakesTheGroup(t *testing.T) {
	p := fakeProc(t, "sleeper", "-child")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLog("ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p.LogPath)
	var child int
	for _, l := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(l, "child pid "); ok {
			child, _ = strconv.Atoi(s)
		}
	}
	if child <= 0 {
		t.Fatalf("no child pid in log:\n%s", b)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("Wait = %v, want killed by SIGKILL", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !procGone(child) {
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("grandchild %d survived Kill", child)
		}
		time.Sleep(pollInterval)
	}
	if err := p.Kill(); err != nil {
		t.Fatalf("second Kill = %v", err)
	}
}

func TestProcWaitLog(t *testing.T) {
	p := fakeProc(t, "sleeper")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLog("ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLog("never written", 100*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitLog(absent) = %v, want ErrTimeout", err)
	}
	// After a restart, WaitLog only looks at the new run's lines.
	off := p.LogSize()
	if off == 0 {
		t.Fatal("LogSize = 0 after ready")
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLogAfter(off, "ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLog("stopping", 100*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitLog saw the previous run's line: %v", err)
	}
	if err := p.WaitLogAfter(0, "stopping", time.Second); err != nil {
		t.Fatalf("WaitLogAfter(0) = %v; the first run logged it", err)
	}
	if got := strings.Count(p.Tail(10), "ready"); got != 2 {
		t.Fatalf("Tail holds %d ready lines, want 2:\n%s", got, p.Tail(10))
	}
}

func TestProcWaitLogExited(t *testing.T) {
	p := fakeProc(t, "exit3")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := p.WaitLog("ready", time.Minute)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("WaitLog = %v, want ErrExited", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("WaitLog waited for its deadline on a dead process")
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Wait = %v, want exit status 3", err)
	}
	if got := p.Tail(5); got != "exiting with 3\n" {
		t.Fatalf("Tail = %q", got)
	}
}

func TestTailLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a\n", 3, "a\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc\n"},
		{"a\nb\nc\n\n", 1, "c\n"},
		{"a\nb\n", 5, "a\nb\n"},
	} {
		if got := tailLines([]byte(tc.in), tc.n); got != tc.want {
			t.Errorf("tailLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// fakeBinDir makes a bin dir whose daemons and tools are this test binary.
func fakeBinDir(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []string{"kumo-manager", "kumo-server", "kumo-gateway", "kumoctl", "kumostat"} {
		if err := os.Symlink(exe, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestClusterWithFakes(t *testing.T) {
	c := StartT(t, Options{BinDir: fakeBinDir(t), Managers: 2, Servers: 2, GatewayBinaryPort: -1})
	if n := c.NumServers(); n != 2 {
		t.Fatalf("NumServers = %d", n)
	}
	if err := c.ManagerProc(0).WaitLog("attached", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// Command lines follow the contract.
	s := c.Server(1)
	wantArgs := []string{"-l", s.Addr, "-L", "", "-m", c.Manager(0), "-p", c.Manager(1), "-s", filepath.Join(c.Dir(), "server-2.kch"), "-o", s.LogPath}
	if len(s.Args) != len(wantArgs) {
		t.Fatalf("server args %q, want like %q", s.Args, wantArgs)
	}
	for i, w := range wantArgs {
		if w != "" && s.Args[i] != w {
			t.Fatalf("server args %q, want like %q", s.Args, wantArgs)
		}
	}
	if got := flagValue(c.ManagerProc(1).Args, "-p"); got != c.Manager(0) {
		t.Fatalf("manager-2 -p %q, want %q", got, c.Manager(0))
	}
	gw := c.GatewayProc().Args
	if flagValue(gw, "-t") != c.Gateway() || flagValue(gw, "-b") != c.GatewayBinary() || c.GatewayBinary() == "" {
		t.Fatalf("gateway args %q", gw)
	}

	out, err := c.Ctl("attach")
	if err != nil || out != "nil\n" {
		t.Fatalf("Ctl(attach) = %q, %v", out, err)
	}
	if _, err := c.Ctl("bogus"); err == nil || !strings.Contains(err.Error(), "kumoctl") {
		t.Fatalf("Ctl(bogus) error = %v", err)
	}
	if out, err := c.Stat("items"); err != nil || out != "fake stat -m "+c.Manager(0)+" items\n" {
		t.Fatalf("Stat = %q, %v", out, err)
	}
	if out, err := c.StatServer(0, "pid"); err != nil || out != "fake stat "+c.Server(0).Addr+" pid\n" {
		t.Fatalf("StatServer = %q, %v", out, err)
	}

	pid := s.Pid()
	if err := c.KillServer(1); err != nil {
		t.Fatal(err)
	}
	if s.Alive() {
		t.Fatal("server alive after KillServer")
	}
	if err := c.RestartServer(1); err != nil {
		t.Fatal(err)
	}
	if !s.Alive() || s.Pid() == pid {
		t.Fatalf("RestartServer: alive=%v pid %d (was %d)", s.Alive(), s.Pid(), pid)
	}
	p, err := c.AddServer()
	if err != nil {
		t.Fatal(err)
	}
	if c.NumServers() != 3 || c.Server(2) != p || !strings.HasSuffix(flagValue(p.Args, "-s"), "server-3.kch") {
		t.Fatalf("AddServer: %d servers, %v", c.NumServers(), p)
	}
	if err := c.Probe(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	c.Dump(&dump)
	for _, want := range []string{"==> manager-1:", "==> manager-2:", "==> server-3:", "==> gateway:", "connect success", "new node " + p.Addr} {
		if !strings.Contains(dump.String(), want) {
			t.Errorf("Dump lacks %q:\n%s", want, dump.String())
		}
	}

	procs := c.Procs()
	c.Stop()
	c.Stop()
	for _, p := range procs {
		if p.Alive() {
			t.Errorf("%s alive after Stop", p.Name)
		}
	}
	if !strings.Contains(c.ManagerProc(0).Tail(1), "manager stopping") {
		t.Errorf("manager did not get SIGTERM: %q", c.ManagerProc(0).Tail(1))
	}
	if _, err := c.AddServer(); !errors.Is(err, ErrStopped) {
		t.Errorf("AddServer after Stop = %v", err)
	}
}

func TestStartFailsWithLogs(t *testing.T) {
	bin := fakeBinDir(t)
	// A gateway that cannot start: Start must fail fast, stop the rest and
	// report the logs.
	os.Remove(filepath.Join(bin, "kumo-gateway"))
	c, err := Start(Options{BinDir: bin, Dir: t.TempDir(), Servers: 1})
	if err == nil {
		c.Stop()
		t.Fatal("Start succeeded without a gateway binary")
	}
	var se *StartError
	if !errors.As(err, &se) || !strings.Contains(se.Logs, "==> manager-1:") || !strings.Contains(se.Logs, "new node") {
		t.Fatalf("Start error = %v", err)
	}
}

func TestStartCanceled(t *testing.T) {
	// Every daemon is a sleeper, so no server ever reaches the manager; with
	// a canceled context Start gives up at once and stops everything.
	t.Setenv(envFake, "sleeper")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	_, err := Start(Options{BinDir: fakeBinDir(t), Dir: t.TempDir(), Servers: 1, Context: ctx})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > ReadyTimeout/2 {
		t.Fatalf("Start took %v after cancel", d)
	}
}

func TestLogScannerAcrossWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	s := logScanner{path: path, want: []byte("new node 1.2.3.4:5")}
	if found, err := s.scan(); found || err != nil {
		t.Fatalf("scan of a missing file = %v, %v", found, err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The wanted text arrives split over several writes, one byte at a time
	// at the seam.
	for i, part := range []string{"noise\nnew no", "d", "e", " 1.2.3.", "4:5\n"} {
		f.WriteString(part)
		found, err := s.scan()
		if err != nil {
			t.Fatal(err)
		}
		if want := i == 4; found != want {
			t.Fatalf("after write %d (%q): found %v, want %v", i, part, found, want)
		}
	}
	// A scanner that starts after the text does not see it.
	s2 := logScanner{path: path, off: s.off, want: s.want}
	if found, _ := s2.scan(); found {
		t.Fatal("found text before the start offset")
	}
}

func TestServerPortTakenIsRetried(t *testing.T) {
	t.Setenv("LOCALCLUSTER_BIND_FAIL", filepath.Join(t.TempDir(), "failed-once"))
	c := StartT(t, Options{BinDir: fakeBinDir(t), Servers: 2})
	var failed *Proc
	for i := range c.NumServers() {
		s := c.Server(i)
		if strings.Contains(s.Tail(10), "address already in use") {
			failed = s
		}
		if !s.Alive() || flagValue(s.Args, "-l") != s.Addr {
			t.Fatalf("%s: alive %v, args %q, addr %s", s.Name, s.Alive(), s.Args, s.Addr)
		}
	}
	if failed == nil {
		t.Fatal("no server failed its first bind")
	}
	if err := c.ManagerProc(0).WaitLog("new node "+failed.Addr, time.Second); err != nil {
		t.Fatal(err)
	}
}

// Ensure that Probe on a cluster whose first server embeds the gateway
// (no gateway process) watches that server: a failed probe used to
// dereference the missing gateway process and panic.
func TestProbeEmbeddedWatchesFirstServer(t *testing.T) {
	c := &Cluster{opts: Options{Context: context.Background(), EmbeddedGateway: true},
		gwText: "127.0.0.1:1", servers: []*Proc{{Name: "server-1"}}}
	if err := c.Probe(5 * time.Second); !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "server-1") {
		t.Fatalf("Probe = %v, want ErrExited naming server-1", err)
	}
}
