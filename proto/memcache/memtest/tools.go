package memtest

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
	"testing"
	"time"

	"kumofs/proto/memcache"
)

// StartServer serves s on a fresh 127.0.0.1 port and returns the address.
// The server is closed when the test ends.
func StartServer(t testing.TB, s *memcache.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != memcache.ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return l.Addr().String()
}

// StartMemcached starts the memcached binary bin on a free 127.0.0.1 port
// (-U 0: no UDP) and returns its address once it accepts connections. It
// is killed when the test ends. The port is chosen free and then handed to
// memcached, so another process may take it in between (tests start many
// daemons at once): the memcached that answers must report our process's
// pid in its stats, or a new port is tried. Without that check two
// parallel tests could share one memcached and see each other's keys.
func StartMemcached(t testing.TB, bin string) string {
	t.Helper()
	var last error
	for range 5 {
		addr, err := startMemcached(t, bin)
		if err == nil {
			return addr
		}
		last = err
	}
	t.Fatalf("memcached did not start: %v", last)
	return ""
}

// startMemcached is one attempt of StartMemcached.
func startMemcached(t testing.TB, bin string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-U", "0", "-l", "127.0.0.1", "-p", port, "-u", "nobody")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() { cmd.Process.Kill(); <-exited }
	want := "STAT pid " + strconv.Itoa(cmd.Process.Pid) + "\r\n"
	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case <-exited:
			return "", errors.New("memcached exited (port " + port + " taken?)")
		default:
		}
		if stats, err := askStats(addr); err == nil {
			if !strings.Contains(stats, want) {
				stop()
				return "", errors.New("port " + port + " answered by another memcached")
			}
			t.Cleanup(stop)
			return addr, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", errors.New("memcached did not accept connections on port " + port)
		}
		time.Sleep(10 * time.Millisecond) // polling for the port, not synchronising
	}
}

// askStats returns the reply to "stats" at addr, up to its END line.
func askStats(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		return "", err
	}
	var b []byte
	buf := make([]byte, 4096)
	for !bytes.HasSuffix(b, []byte("END\r\n")) {
		n, err := c.Read(buf)
		if err != nil {
			return "", err
		}
		b = append(b, buf[:n]...)
	}
	return string(b), nil
}

// repoRoot finds the module root (the directory holding go.mod) above this
// source file's package directory or the working directory.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// RequireTool returns the path of an external test tool. If it is missing
// it runs scripts/install-test-tools.sh once; if still missing the test is
// skipped, or fails when KUMO_REQUIRE_TOOLS=1.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	script := filepath.Join(repoRoot(), "scripts", "install-test-tools.sh")
	if out, err := exec.Command(script).CombinedOutput(); err != nil {
		t.Logf("%s: %v\n%s", script, err, out)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("KUMO_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is not installed (KUMO_REQUIRE_TOOLS=1)", name)
	}
	t.Skipf("%s is not installed", name)
	return ""
}

// MemccapableCases is how many cases memccapable (libmemcached-tools 1.0.x)
// runs: 27 ascii and 27 binary.
const MemccapableCases = 54

// RunMemccapable runs memccapable against addr (host:port) and fails t
// unless every case passes. It flushes the server.
func RunMemccapable(t testing.TB, addr string) {
	t.Helper()
	bin := RequireTool(t, "memccapable")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("bad address %q: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-t", "10")
	out, err := cmd.CombinedOutput()
	pass, fail := 0, 0
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasSuffix(line, "[pass]"):
			pass++
		case strings.Contains(line, "[FAIL]") || strings.Contains(line, "[fail]"):
			fail++
			t.Errorf("memccapable: %s", line)
		}
	}
	if err != nil || pass != MemccapableCases || fail != 0 {
		t.Errorf("memccapable: %d passed, %d failed (want %d passed), err %v\n%s",
			pass, fail, MemccapableCases, err, bytes.TrimSpace(out))
	}
}
