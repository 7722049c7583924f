package localcluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Polling interval of WaitLog and the other waits of this package.
const pollInterval = 20 * time.Millisecond

// DefaultStopTimeout is how long Stop waits after SIGTERM before it sends
// SIGKILL.
const DefaultStopTimeout = 10 * time.Second

// Proc is one child process (a daemon). Its stdout and stderr are appended
// to LogPath, the same file the daemon is told to log to with -o, so crashes
// and panics land next to the log lines. The exported fields are set before
// Start and not changed while the process runs (localcluster itself changes
// Addr and Args only of a server that failed to bind, before starting it
// again and before anyone else can see it).
//
// The child runs in its own process group; Kill and Stop signal the whole
// group. On Linux the child also gets SIGKILL when the parent dies
// (PR_SET_PDEATHSIG), so no daemon outlives a crashed test or kumo-local.
// The kernel ties that signal to the OS thread that started the child; Go
// only ends threads of goroutines that exit while locked with
// runtime.LockOSThread, so do not start a Proc from such a goroutine.
type Proc struct {
	Name    string   // short name for messages: "manager-1", "server-2", "gateway"
	Path    string   // the executable
	Args    []string // arguments, without the program name
	Addr    string   // main address (host:port) the process serves
	LogPath string   // where stdout and stderr are appended
	Env     []string // extra environment (KEY=value), added to this process's

	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL; zero
	// means DefaultStopTimeout.
	StopTimeout time.Duration

	mu       sync.Mutex    // protects the fields below
	cmd      *exec.Cmd     // the current (or last) run; nil before Start
	done     chan struct{} // closed when the current run has exited
	waitErr  error         // exit status of the last run, set before done closes
	startOff int64         // log size when the current run started
}

// Start starts the process. It fails with ErrRunning if it is running.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("%w: %s", ErrRunning, p.Name)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("localcluster: %s: %w", p.Name, err)
	}
	defer logf.Close() // the child has its own copy
	st, err := logf.Stat()
	if err != nil {
		return fmt.Errorf("localcluster: %s: %w", p.Name, err)
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("localcluster: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.waitErr, p.startOff = cmd, done, nil, st.Size()
	// The waiter is owned by this run: it ends when the child exits, which
	// Stop and Kill guarantee.
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if p.done == done {
			p.waitErr = err
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// current returns the running command and its done channel.
func (p *Proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// Pid returns the process id of the current run, or 0 before Start.
func (p *Proc) Pid() int {
	cmd, _ := p.current()
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	return cmd.Process.Pid
}

// Alive reports whether the process has been started and not exited.
func (p *Proc) Alive() bool {
	cmd, done := p.current()
	return cmd != nil && !isClosed(done)
}

// Done returns a channel that is closed when the current run exits (nil
// before Start).
func (p *Proc) Done() <-chan struct{} {
	_, done := p.current()
	return done
}

// Wait waits for the current run to exit and returns its exit error (nil
// for exit status 0; an *exec.ExitError otherwise).
func (p *Proc) Wait() error {
	cmd, done := p.current()
	if cmd == nil {
		return ErrNotStarted
	}
	<-done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// signal sends sig to the process group of the current run (and to the
// process itself, in case it left the group).
func (p *Proc) signal(sig syscall.Signal) error {
	cmd, done := p.current()
	if cmd == nil {
		return ErrNotStarted
	}
	if isClosed(done) {
		return nil
	}
	pid := cmd.Process.Pid
	signalGroup(pid, sig)
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("localcluster: signal %s: %w", p.Name, err)
	}
	return nil
}

// Kill sends SIGKILL and waits until the process is gone. Killing a process
// that is not running is not an error.
func (p *Proc) Kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		if errors.Is(err, ErrNotStarted) {
			return nil
		}
		return err
	}
	<-p.Done()
	return nil
}

// Stop sends SIGTERM, waits up to StopTimeout for the process to exit, then
// sends SIGKILL. It returns the exit error of a process that did not exit
// cleanly after SIGTERM (nil when it exited with status 0). Stopping a
// process that is not running returns nil.
func (p *Proc) Stop() error {
	cmd, done := p.current()
	if cmd == nil || isClosed(done) {
		return nil
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	d := p.StopTimeout
	if d <= 0 {
		d = DefaultStopTimeout
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return p.Wait()
	case <-t.C:
		p.signal(syscall.SIGKILL)
		<-done
		return fmt.Errorf("localcluster: %s did not exit within %v of SIGTERM; killed", p.Name, d)
	}
}

// Restart stops the process if it runs (see Stop) and starts it again with
// the same arguments.
func (p *Proc) Restart() error {
	p.Stop()
	return p.Start()
}

// LogSize returns the current size of the log file (an offset for
// WaitLogAfter).
func (p *Proc) LogSize() int64 {
	st, err := os.Stat(p.LogPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

// WaitLog waits until substr appears in the log after the point where the
// current run started; see WaitLogAfter.
func (p *Proc) WaitLog(substr string, timeout time.Duration) error {
	p.mu.Lock()
	off := p.startOff
	p.mu.Unlock()
	return p.WaitLogAfter(off, substr, timeout)
}

// WaitLogAfter polls the log file until substr appears at or after byte
// offset off. It fails with ErrTimeout after timeout, and with ErrExited as
// soon as the process has exited without writing substr.
func (p *Proc) WaitLogAfter(off int64, substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	sc := logScanner{path: p.LogPath, off: off, want: []byte(substr)}
	for {
		// Look at done before reading: a process that exited had written
		// everything it ever will by then.
		_, done := p.current()
		exited := done != nil && isClosed(done)
		found, err := sc.scan()
		if err != nil {
			return err
		}
		if found {
			return nil
		}
		if exited {
			return fmt.Errorf("%w: %s exited (%v) before logging %q", ErrExited, p.Name, p.Wait(), substr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s did not log %q within %v", ErrTimeout, p.Name, substr, timeout)
		}
		time.Sleep(pollInterval)
	}
}

// logScanner searches a growing file for a byte string, reading each byte
// only once (plus an overlap of len(want)-1 bytes between reads).
type logScanner struct {
	path string
	off  int64  // file offset of the next byte to read
	tail []byte // the last len(want)-1 bytes before off
	want []byte
}

// scan reads what was appended since the last call and reports whether want
// has appeared at or after the starting offset.
func (s *logScanner) scan() (bool, error) {
	f, err := os.Open(s.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("localcluster: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(s.off, io.SeekStart); err != nil {
		return false, fmt.Errorf("localcluster: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return false, fmt.Errorf("localcluster: %w", err)
	}
	s.off += int64(len(b))
	buf := append(s.tail, b...)
	if bytes.Contains(buf, s.want) {
		return true, nil
	}
	keep := len(s.want) - 1
	if keep > len(buf) {
		keep = len(buf)
	}
	s.tail = append([]byte(nil), buf[len(buf)-keep:]...)
	return false, nil
}

// Tail returns the last n lines of the log file.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(%v)\n", err)
	}
	return tailLines(b, n)
}

func tailLines(b []byte, n int) string {
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return ""
	}
	i := len(b)
	for k := 0; k < n; k++ {
		j := bytes.LastIndexByte(b[:i], '\n')
		if j < 0 {
			i = 0
			break
		}
		i = j
	}
	s := strings.TrimPrefix(string(b[i:]), "\n")
	return s + "\n"
}

// String returns the name and command line.
func (p *Proc) String() string {
	return p.Name + ": " + p.Path + " " + strings.Join(p.Args, " ")
}
