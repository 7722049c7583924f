package daemon

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envHelper makes the test binary act as a tiny daemon (see TestMain): it
// daemonizes with -d $KUMO_DAEMON_TEST_PIDFILE and waits for SIGTERM.
const envHelper = "KUMO_DAEMON_TEST_PIDFILE"

func TestMain(m *testing.M) {
	if path := os.Getenv(envHelper); path != "" {
		helperDaemon(path)
		return
	}
	os.Exit(m.Run())
}

// helperDaemon is what kumo-manager's main does around its role.
func helperDaemon(path string) {
	c := Common{PidFile: path, LogPath: path + ".log", Verbose: true}
	log, err := c.Setup("helper")
	if err != nil {
		Fatal(os.Stderr, "helper", err)
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
	dir := t.TempDir()
	pidPath := filepath.Join(dir, "helper.pid")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envHelper+"="+pidPath)
	if out, err := cmd.CombinedOutput(); err != nil {
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
