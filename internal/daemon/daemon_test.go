package daemon

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kumofs/internal/cli"
	"kumofs/internal/logging"
	"kumofs/kumo/clock"
)

// envHelper makes the test binary act as a tiny daemon (see TestMain): it
// daemonizes with -d $KUMO_DAEMON_TEST_PIDFILE and waits for SIGTERM.
const envHelper = "KUMO_DAEMON_TEST_PIDFILE"

// envHelperFail makes the helper daemon fail with its value before serving.
const envHelperFail = "KUMO_DAEMON_TEST_FAIL"

// envFailNow makes the test binary call Common.Fail with the log on
// stderr (LogPath "") and the value as the error.
const envFailNow = "KUMO_DAEMON_TEST_FAILNOW"

func TestMain(m *testing.M) {
	if msg := os.Getenv(envFailNow); msg != "" {
		c := Common{}
		log, err := c.Setup("helper")
		if err != nil {
			os.Exit(3)
		}
		c.Fail(log, "helper", "cannot start", errors.New(msg))
	}
	if path := os.Getenv(envHelper); path != "" {
		helperDaemon(path)
		return
	}
	os.Exit(m.Run())
}

// helperCmd returns the test binary run as the helper daemon with -d
// pidPath and the extra environment.
func helperCmd(t *testing.T, pidPath string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envHelper+"="+pidPath), env...)
	return cmd
}

// helperDaemon is what kumo-manager's main does around its role.
func helperDaemon(path string) {
	c := Common{PidFile: path, LogPath: path + ".log", Verbose: true}
	log, err := c.Setup("helper")
	if err != nil {
		Fatal(os.Stderr, "helper", err)
	}
	if os.Getenv(envHelperFail) != "" {
		// What a daemon whose port is taken does before it serves.
		log.Errorf("cannot start: %s", os.Getenv(envHelperFail))
		Fatal(os.Stderr, "helper", errors.New(os.Getenv(envHelperFail)))
	}
	Wait(log, func() error { return nil })
	os.Exit(0)
}

func TestRemovePidFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string // "" = no file
		pid     int
		removed bool
	}{
		{"ours", "1234\n", 1234, true},
		{"ours without newline", "1234", 1234, true},
		{"another daemon's", "999\n", 1234, false},
		{"garbage", "x\n", 1234, false},
		{"missing", "", 1234, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".pid")
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := RemovePidFile(path, tt.pid); got != tt.removed {
				t.Fatalf("RemovePidFile = %v, want %v", got, tt.removed)
			}
			_, err := os.Stat(path)
			switch {
			case tt.removed && !errors.Is(err, os.ErrNotExist):
				t.Fatalf("file still there: %v", err)
			case !tt.removed && tt.content != "" && err != nil:
				t.Fatalf("file removed: %v", err)
			}
		})
	}
}

// Ensure that a daemon started with -d removes its pid file when SIGTERM
// stops it.
func TestDaemonRemovesPidFileOnSIGTERM(t *testing.T) {
	pidPath := filepath.Join(t.TempDir(), "helper.pid")
	if out, err := helperCmd(t, pidPath).CombinedOutput(); err != nil {
		t.Fatalf("parent: %v: %s", err, out)
	}
	// The parent has exited after writing the child's pid.
	b, err := os.ReadFile(pidPath)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file %q", b)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	// Wait until the daemon has set up its signal handler.
	waitFor(t, func() bool {
		log, _ := os.ReadFile(pidPath + ".log")
		return strings.Contains(string(log), "waiting for SIGTERM")
	})
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, err := os.Stat(pidPath)
		return errors.Is(err, os.ErrNotExist)
	})
	log, _ := os.ReadFile(pidPath + ".log")
	if !strings.Contains(string(log), "stopped") {
		t.Fatalf("log:\n%s", log)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Ensure that the daemons' clock (default --clock-max-ahead) refuses a peer
// clock in the year 2101 without moving, logs one line per peer and minute,
// and still merges a peer a few minutes ahead; --clock-max-ahead 0 turns
// the limit off.
func TestNewClockMaxAhead(t *testing.T) {
	parse := func(args ...string) *Common {
		var c Common
		fs := cli.New("test", "usage")
		c.Register(fs, time.Second, true)
		c.RegisterClock(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	var buf bytes.Buffer
	log := logging.New(&buf, logging.Info).With("server")
	c := parse()
	if c.MaxAhead != clock.DefaultMaxAhead {
		t.Fatalf("default MaxAhead %v", c.MaxAhead)
	}
	clk, err := c.NewClock(log)
	if err != nil {
		t.Fatal(err)
	}
	before := clk.Current()
	y2101 := clock.Make(4_133_980_800, 1)
	for i := 0; i < 3; i++ {
		if err := clk.ObserveFrom(clock.Name("10.0.0.9:19800"), y2101); !errors.Is(err, clock.ErrTooFarAhead) {
			t.Fatalf("Observe 2101: %v", err)
		}
	}
	if clk.Current() != before {
		t.Fatalf("clock moved to %v", clock.Time(clk.Current()))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "clock of 10.0.0.9:19800 not merged: 2101-01-01T00:00:00Z is more than 10m0s ahead of our wall clock; check that host's clock") {
		t.Fatalf("log:\n%s", buf.String())
	}
	ahead := clock.Make(uint32(time.Now().Add(3*time.Minute).Unix()), 0)
	if err := clk.Observe(ahead); err != nil || clk.Current() != ahead {
		t.Fatalf("3 minutes ahead: %v, clock %v", err, clock.Time(clk.Current()))
	}
	off, err := parse("--clock-max-ahead", "0").NewClock(log)
	if err != nil {
		t.Fatal(err)
	}
	if err := off.Observe(y2101); err != nil || off.Current() != y2101 {
		t.Fatalf("limit off: %v, clock %v", err, clock.Time(off.Current()))
	}
}

// Ensure that the stop StartProcs returns ends its adapter and leaves
// GOMAXPROCS as it was (no sample can have changed it this soon), with
// and without --fixed-procs.
func TestStartProcsStops(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	for _, fixed := range []bool{false, true} {
		c := Common{FixedProcs: fixed}
		stop := c.StartProcs(logging.New(&bytes.Buffer{}, logging.Info), func() uint64 { return 0 })
		done := make(chan struct{})
		go func() { stop(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("fixed %v: stop did not return", fixed)
		}
		if n := runtime.GOMAXPROCS(0); n != before {
			t.Fatalf("fixed %v: GOMAXPROCS %d, was %d", fixed, n, before)
		}
	}
}

// Ensure that with -d a daemon that fails before it serves (its port taken,
// its store locked) makes the starting command exit 1 with the pid file
// removed, as it would without -d; before, the parent exited 0 at once.
func TestDaemonStartFailureExits1(t *testing.T) {
	pidPath := filepath.Join(t.TempDir(), "helper.pid")
	out, err := helperCmd(t, pidPath, envHelperFail+"=address already in use").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("parent: %v, want exit status 1: %s", err, out)
	}
	if !strings.Contains(string(out), "exited while starting") || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("parent said %q, want one line about the exit", out)
	}
	if _, err := os.Stat(pidPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file left behind: %v", err)
	}
	if log, _ := os.ReadFile(pidPath + ".log"); !strings.Contains(string(log), "cannot start: address already in use") {
		t.Fatalf("the child's log lacks its error:\n%s", log)
	}
}

// Ensure that a second start with the pid file of a running daemon, which
// fails (its port is the running one's), leaves that pid file as it was:
// the parent wrote the new child's pid at once and removed the file when
// the child failed, so logrotate's kill -HUP $(cat PIDFILE) and init
// scripts lost the running daemon (hunt 27d).
func TestFailedSecondStartKeepsPidFile(t *testing.T) {
	pidPath := filepath.Join(t.TempDir(), "helper.pid")
	const running = "4242\n" // the running daemon's, as its parent wrote it
	if err := os.WriteFile(pidPath, []byte(running), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := helperCmd(t, pidPath, envHelperFail+"=address already in use").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("parent: %v, want exit status 1: %s", err, out)
	}
	if b, err := os.ReadFile(pidPath); err != nil || string(b) != running {
		t.Fatalf("pid file after the failed start: %q, %v; want %q", b, err, running)
	}
}

// Ensure that SIGHUP without a log file (-o) logs no ERROR line: systemd's
// reload and logrotate's postrotate send it to every daemon, and the
// operations guide alerts on ERROR lines (hunt 27d).
func TestHupWithoutLogFile(t *testing.T) {
	// Our own registration keeps a signal that comes before Wait's from
	// killing the test.
	mine := make(chan os.Signal, 8)
	signal.Notify(mine, syscall.SIGHUP, syscall.SIGTERM)
	defer signal.Stop(mine)
	var buf syncBuffer
	log := logging.New(&buf, logging.Debug).With("test")
	done := make(chan struct{})
	go func() {
		defer close(done)
		Wait(log, func() error { return nil })
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "waiting for SIGTERM") { // Wait registered
		if time.Now().After(deadline) {
			t.Fatal("Wait did not start")
		}
		time.Sleep(time.Millisecond)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for !strings.Contains(buf.String(), "nothing to reopen") {
		if time.Now().After(deadline) {
			t.Fatalf("no line about the SIGHUP:\n%s", buf.String())
		}
		time.Sleep(time.Millisecond)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after SIGTERM")
	}
	if s := buf.String(); strings.Contains(s, "ERROR") {
		t.Fatalf("log after SIGHUP without a log file:\n%s", s)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Ensure that a daemon that cannot start and logs to stderr (no -o) says so
// in one line, not its log line and Fatal's (hunt 27d: two or three).
func TestFailOneLine(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envFailNow+"=listen tcp 127.0.0.1:1: bind: address already in use")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1: %s", err, out)
	}
	if strings.Count(string(out), "\n") != 1 || !strings.HasSuffix(string(out), "ERROR helper: cannot start: listen tcp 127.0.0.1:1: bind: address already in use\n") {
		t.Fatalf("output %q, want one ERROR line", out)
	}
}
