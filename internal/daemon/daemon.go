// Package daemon holds what kumo's three daemons share around their role:
// the common kumofs options (-v, -o, -d, -Ci, -Ys, -Yn, -TW, -TR, -g), the
// logger they ask for, daemonizing with a pid file, and the signal loop
// (SIGTERM/SIGINT stop cleanly, SIGHUP reopens the log file).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"kumofs/internal/cli"
	"kumofs/internal/httpd"
	"kumofs/internal/logging"
	"kumofs/internal/metrics"
	"kumofs/internal/procs"
	"kumofs/kumo/clock"
)

// Common holds the options every daemon takes.
type Common struct {
	Verbose   bool
	LogPath   string
	BinLog    string
	PidFile   string
	Keepalive time.Duration
	ClockStep time.Duration
	ConnectTO time.Duration
	Retries   int
	WThreads  int
	RThreads  int
	Pprof     string
	HTTP      string
	// MaxAhead is --clock-max-ahead (servers and managers, RegisterClock).
	MaxAhead time.Duration
	// FixedProcs is --fixed-procs: no procs.Adapter (see StartProcs).
	FixedProcs bool
}

// Register adds the common options to fs. keepalive says whether -k means
// the keepalive interval (it is the key prefix on the gateway).
func (c *Common) Register(fs *cli.FlagSet, clockStep time.Duration, keepalive bool) {
	fs.Bool(&c.Verbose, "-v", "--verbose", "verbose mode (debug log lines)")
	fs.String(&c.LogPath, "-o", "--log", "", "output logs to the file (append; reopened on SIGHUP)")
	fs.String(&c.BinLog, "-g", "--binary-log", "", "binary log (accepted for compatibility; not written)")
	fs.String(&c.PidFile, "-d", "--daemon", "", "run as a daemon and write the pid file")
	if keepalive {
		fs.Seconds(&c.Keepalive, "-k", "--keepalive-interval", 2*time.Second, "keepalive interval in seconds")
	} else {
		fs.Seconds(&c.Keepalive, "", "--keepalive-interval", 2*time.Second, "keepalive interval in seconds")
	}
	fs.Seconds(&c.ClockStep, "-Ci", "--clock-interval", clockStep, "clock interval in seconds")
	fs.Seconds(&c.ConnectTO, "-Ys", "--connect-timeout", 2*time.Second, "connect timeout in seconds")
	fs.Int(&c.Retries, "-Yn", "--connect-retry-limit", 4, "connect retry limit")
	fs.Int(&c.WThreads, "-TW", "--write-threads", 2, "number of write threads (accepted for compatibility)")
	fs.Int(&c.RThreads, "-TR", "--read-threads", 8, "number of read threads (accepted for compatibility)")
	fs.String(&c.Pprof, "", "--pprof", "", "serve net/http/pprof on this address (off by default)")
	fs.String(&c.HTTP, "", "--http", "", "serve /metrics, /healthz and /debug/pprof/ on this address (off by default)")
	fs.Bool(&c.FixedProcs, "", "--fixed-procs", "keep one Go P per CPU even while the machine is busy (see docs/operations.md)")
}

// StartProcs adapts the runtime's P count to the CPU the daemon gets
// (internal/procs) until the returned stop is called, logging each change;
// it does nothing with --fixed-procs or GOMAXPROCS in the environment.
// work, if not nil, returns a count that grows with the requests the daemon
// served; the adapter then keeps a change only if it did not cost work.
func (c *Common) StartProcs(log *logging.Logger, work func() uint64) (stop func()) {
	if c.FixedProcs || !procs.Enabled() {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	last := runtime.GOMAXPROCS(0)
	a := &procs.Adapter{Work: work, Changed: func(n int) {
		why := "the machine has idle CPU again, or this daemon served more with more"
		if n < last {
			why = "the machine is busy and this daemon uses fewer; --fixed-procs keeps them all"
		}
		last = n
		log.Infof("goroutines now run on %d Ps (GOMAXPROCS), %d CPUs: %s", n, runtime.NumCPU(), why)
	}}
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// RegisterClock adds --clock-max-ahead, for the daemons that keep a
// cluster clock (servers and managers).
func (c *Common) RegisterClock(fs *cli.FlagSet) {
	fs.Seconds(&c.MaxAhead, "", "--clock-max-ahead", clock.DefaultMaxAhead,
		"refuse a peer clock this far ahead of the local wall clock (0 accepts any)")
}

// envDaemonized marks the re-executed child of Daemonize.
const envDaemonized = "KUMO_DAEMONIZED"

// readyFD is the descriptor on which a daemonized child finds the write
// end of the parent's readiness pipe (the first of cmd.ExtraFiles); the
// parent names it in $KUMO_DAEMON_READY (envReady).
const (
	readyFD  = 3
	envReady = "KUMO_DAEMON_READY"
)

// readyTimeout bounds how long the parent of -d waits for the child to
// start serving before it exits anyway, leaving the child running.
var readyTimeout = 60 * time.Second

// ready is the daemonized child's end of the readiness pipe until Wait
// reports the daemon up (nil otherwise).
var ready atomic.Pointer[os.File]

// pidFile is the absolute path of the pid file this process (the
// daemonized child) was started for, or nil. Wait and Fatal remove it.
var pidFile atomic.Pointer[string]

// Setup daemonizes when -d was given (the parent writes the child's pid to
// the pid file once the child serves, and exits), then opens the logger -o
// and -v ask for. In the daemonized child it remembers the pid file, so
// that Wait and Fatal remove it when the daemon exits.
func (c *Common) Setup(component string) (*logging.Logger, error) {
	if c.PidFile != "" {
		if os.Getenv(envDaemonized) == "" {
			if err := c.daemonize(); err != nil {
				return nil, err
			}
			os.Exit(0)
		}
		if abs, err := filepath.Abs(c.PidFile); err == nil {
			pidFile.Store(&abs)
		}
		if os.Getenv(envReady) == strconv.Itoa(readyFD) {
			os.Unsetenv(envReady)
			syscall.CloseOnExec(readyFD)
			f := os.NewFile(readyFD, "ready")
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
				ready.Store(f)
			}
		}
	}
	l, err := logging.Setup(c.LogPath, c.Verbose)
	if err != nil {
		return nil, err
	}
	l = l.With(component)
	StartPprof(c.Pprof, l)
	return l, nil
}

// daemonize re-executes this program in a new session, detached from the
// terminal, and writes its pid file. Go cannot fork; a re-exec with setsid
// is the equivalent of kumofs's double fork.
func (c *Common) daemonize() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if c.LogPath != "" && c.LogPath != "-" {
		// The child's first step; its error would go only to the log
		// it cannot open.
		f, err := os.OpenFile(c.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	}
	// The child reports through a pipe that it serves (Wait): a daemon
	// that cannot start (its port taken, its store locked) makes this
	// process exit 1, as without -d, so that init scripts can tell.
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), envDaemonized+"=1", envReady+"="+strconv.Itoa(readyFD))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.ExtraFiles = []*os.File{pw} // readyFD in the child
	if c.LogPath != "" {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	} else {
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return err
	}
	// The pid file is written once the child serves (or is still
	// starting at the deadline): a second start that fails (the port
	// taken by the running daemon) must not replace, and then remove,
	// the running daemon's pid file.
	writePid := func() error {
		if err := os.WriteFile(c.PidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
			cmd.Process.Kill()
			return err
		}
		return cmd.Process.Release()
	}
	pr.SetReadDeadline(time.Now().Add(readyTimeout))
	var b [1]byte
	n, err := pr.Read(b[:])
	switch {
	case n == 1:
		return writePid()
	case errors.Is(err, os.ErrDeadlineExceeded):
		fmt.Fprintf(os.Stderr, "%s: still starting after %v (pid %d); see its log\n", filepath.Base(exe), readyTimeout, cmd.Process.Pid)
		return writePid()
	}
	// The child exited before it served: its error went to its log (-o)
	// or to the stderr it shares with this process.
	state, _ := cmd.Process.Wait()
	if c.LogPath != "" && c.LogPath != "-" {
		return fmt.Errorf("%w (%v); see %s", ErrNotStarted, state, c.LogPath)
	}
	return fmt.Errorf("%w (%v)", ErrNotStarted, state)
}

// ErrNotStarted is returned by Setup in the parent of -d when the daemon
// exited before it served.
var ErrNotStarted = errors.New("daemon: exited while starting")

// notifyReady tells the parent of -d, if any, that the daemon serves.
func notifyReady() {
	if f := ready.Swap(nil); f != nil {
		f.Write([]byte{1})
		f.Close()
	}
}

// StartHTTP serves /metrics, /healthz, /debug/pprof/ and the extra
// handlers on --http, when given; /healthz answers 503 with health's error
// while it returns one (nil health: always 200). The returned func stops
// it.
func (c *Common) StartHTTP(reg *metrics.Registry, extra map[string]http.Handler, health func() error, log *logging.Logger) (func(), error) {
	if c.HTTP == "" {
		return func() {}, nil
	}
	s, err := httpd.StartOptions(c.HTTP, reg, extra, log.Warnf, httpd.Options{Health: health})
	if err != nil {
		return nil, err
	}
	log.Infof("http on %s", s.URL())
	return func() { s.Close() }, nil
}

// NewClock returns the process clock, offset by KUMO_CLOCK_OFFSET when set
// (clock-skew tests). It refuses peer clocks more than c.MaxAhead ahead of
// the wall clock (see RegisterClock) and logs one warning per peer and
// minute about them.
func (c *Common) NewClock(log *logging.Logger) (*clock.Clock, error) {
	off, err := clock.OffsetFromEnv()
	if err != nil {
		return nil, err
	}
	return clock.New(clock.Options{Offset: off, MaxAhead: c.MaxAhead, Refused: RefusedLogger(log, c.MaxAhead)}), nil
}

// RefusedLogger returns a clock.Options.Refused that logs one warning line
// per report, for a clock refusing peers more than maxAhead ahead.
func RefusedLogger(log *logging.Logger, maxAhead time.Duration) func(peer string, ct uint64, err error, n uint64) {
	return func(peer string, ct uint64, _ error, n uint64) {
		if peer == "" {
			peer = "a peer"
		}
		more := ""
		if n > 1 {
			more = " (" + strconv.FormatUint(n, 10) + " refusals since the last report)"
		}
		log.Warnf("clock of %s not merged: %s is more than %v ahead of our wall clock%s; check that host's clock",
			peer, clock.Time(ct).UTC().Format(time.RFC3339), maxAhead, more)
	}
}

// Wait blocks until SIGTERM or SIGINT, reopening the log on SIGHUP, then
// runs stop.
func Wait(log *logging.Logger, stop func() error) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	signal.Ignore(syscall.SIGPIPE)
	notifyReady()
	log.Debugf("waiting for SIGTERM or SIGINT")
	for sig := range ch {
		if sig == syscall.SIGHUP {
			// Without a log file there is nothing to reopen: systemd's
			// reload and logrotate's postrotate send SIGHUP anyway, and an
			// ERROR line for each would be a false alarm.
			if err := log.Reopen(); errors.Is(err, logging.ErrNoFile) {
				log.Debugf("SIGHUP: not logging to a file, nothing to reopen")
			} else if err != nil {
				log.Errorf("reopening the log: %v", err)
			}
			continue
		}
		log.Infof("%v: shutting down", sig)
		break
	}
	// Further SIGTERM/SIGINT keep arriving in ch (and are dropped once it
	// is full) rather than killing the process in the middle of a clean
	// shutdown: supervisors often signal the process and its group.
	if err := stop(); err != nil {
		log.Errorf("shutdown: %v", err)
	}
	removeOwnPidFile()
	log.Infof("stopped")
}

// removeOwnPidFile removes the pid file Setup remembered, if any.
func removeOwnPidFile() {
	if p := pidFile.Load(); p != nil {
		RemovePidFile(*p, os.Getpid())
	}
}

// RemovePidFile removes the pid file at path if it still holds pid: a
// daemon started later with the same -d path has written its own pid there,
// and its file must stay. It reports whether the file was removed.
func RemovePidFile(path string, pid int) bool {
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		return false
	}
	return os.Remove(path) == nil
}

// Fail ends a daemon that cannot start: the log line "what: err", then,
// if the log goes to a file (-o), Fatal's line on stderr, so that a
// terminal always shows one line about it and never two.
func (c *Common) Fail(log *logging.Logger, prog, what string, err error) {
	log.Errorf("%s: %v", what, err)
	if c.LogPath == "" || c.LogPath == "-" {
		removeOwnPidFile()
		os.Exit(1)
	}
	Fatal(os.Stderr, prog, err)
}

// Fatal prints one clear line for an error that stops the program and exits
// 1. A daemonized process also removes its pid file.
func Fatal(w io.Writer, prog string, err error) {
	removeOwnPidFile()
	var pe *os.PathError
	if errors.As(err, &pe) {
		fmt.Fprintf(w, "%s: %s: %v\n", prog, pe.Path, pe.Err)
	} else {
		fmt.Fprintf(w, "%s: %v\n", prog, err)
	}
	os.Exit(1)
}

// StartPprof serves net/http/pprof on addr (the daemons' --pprof flag) so
// CPU and allocation profiles can be taken from a running daemon. Off when
// addr is empty.
func StartPprof(addr string, log *logging.Logger) {
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Errorf("pprof: %v", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Infof("pprof on http://%s/debug/pprof/", ln.Addr())
	go http.Serve(ln, mux)
}
