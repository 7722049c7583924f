//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY returns the master and slave ends of a new pseudo-terminal with
// the given size.
func openPTY(t *testing.T, cols, rows uint16) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	if err := ioctl(master.Fd(), syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Fatal(err)
	}
	var n uint32
	if err := ioctl(master.Fd(), syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	ws := struct{ Row, Col, X, Y uint16 }{Row: rows, Col: cols}
	if err := ioctl(master.Fd(), syscall.TIOCSWINSZ, unsafe.Pointer(&ws)); err != nil {
		t.Fatal(err)
	}
	return master, slave
}

// screenLog collects what the program writes to the terminal.
type screenLog struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (l *screenLog) drain(master *os.File) {
	var b [4096]byte
	for {
		n, err := master.Read(b[:])
		l.mu.Lock()
		l.buf.Write(b[:n])
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (l *screenLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor polls until the screen shows want.
func (l *screenLog) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("screen never showed %q; got %q", want, l.String())
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronizing
	}
}

func termios(t *testing.T, f *os.File) syscall.Termios {
	t.Helper()
	var tio syscall.Termios
	if err := ioctl(f.Fd(), syscall.TCGETS, unsafe.Pointer(&tio)); err != nil {
		t.Fatal(err)
	}
	return tio
}

// TestPTY runs kumotop on a pseudo-terminal: it draws full-screen at the
// terminal's width, quits on a single q (raw mode) or on SIGTERM, and
// restores the terminal both times.
func TestPTY(t *testing.T) {
	srv := (&fake{step: [3]uint64{1, 1, 1}, status: serverStatus(3, clock0, u(0))}).start(t)
	for _, how := range []string{"q", "SIGTERM"} {
		t.Run(how, func(t *testing.T) {
			master, slave := openPTY(t, 100, 40)
			before := termios(t, slave)
			if before.Lflag&syscall.ICANON == 0 {
				t.Fatal("pty not in canonical mode")
			}
			var log screenLog
			go log.drain(master)

			var stderr bytes.Buffer
			done := make(chan int)
			go func() { done <- run([]string{"-i", "0.02", srv.addr.String()}, slave, slave, &stderr) }()
			log.waitFor(t, "     Get/s    Set/s    Del/s  time") // the 2-line layout of 100 columns
			if raw := termios(t, slave); raw.Lflag&(syscall.ICANON|syscall.ECHO) != 0 {
				t.Errorf("terminal not in raw mode while running: lflag %#x", raw.Lflag)
			}
			if how == "q" {
				master.Write([]byte("q"))
			} else {
				syscall.Kill(os.Getpid(), syscall.SIGTERM)
			}
			select {
			case code := <-done:
				if code != 0 || stderr.Len() != 0 {
					t.Errorf("exit %d, stderr %q", code, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("kumotop did not quit")
			}
			log.waitFor(t, escLeave)
			if after := termios(t, slave); after != before {
				t.Errorf("terminal not restored:\n%+v\nwant\n%+v", after, before)
			}
			out := log.String()
			if !strings.HasPrefix(out, escEnter+escHome+"kumotop  ") {
				t.Errorf("screen starts with %q", out[:min(len(out), 40)])
			}
			if !strings.Contains(out, "  1 server  q: quit"+escEOL) {
				t.Errorf("title without the key hint: %q", out[:min(len(out), 100)])
			}
			// Frames start at the home position and lines end with \r\n.
			for _, line := range strings.Split(strings.ReplaceAll(out, escHome, "\r\n"), "\r\n") {
				line = strings.NewReplacer(escEnter, "", escLeave, "", escEOL, "", escEOS, "").Replace(line)
				if len(line) > 100 {
					t.Errorf("line wider than the terminal: %q", line)
				}
			}
		})
	}
}
