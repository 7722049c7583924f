package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kumofs/internal/localcluster"
)

func TestMain(m *testing.M) { localcluster.Main(m) }

// The built kumo-local starts a cluster that serves memcached, and SIGINT
// stops every child and exits 0.
func TestKumoLocalEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real daemons")
	}
	bin, err := localcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "kumo-manager")); err != nil {
		t.Skipf("daemons not built: %v", err)
	}
	port, err := localcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	outPath := filepath.Join(t.TempDir(), "out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(filepath.Join(bin, "kumo-local"), "-n", "2", "-t", strconv.Itoa(port), "-data", data)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when kumo-local has exited; waitErr is then set.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	deadline := time.Now().Add(60 * time.Second)
	var text string
	for !strings.Contains(text, "Ctrl-C stops everything.") {
		select {
		case <-exited:
			b, _ := os.ReadFile(outPath)
			t.Fatalf("kumo-local exited early (%v):\n%s", waitErr, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kumo-local not ready:\n%s", text)
		}
		time.Sleep(50 * time.Millisecond)
		b, _ := os.ReadFile(outPath)
		text = string(b)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if !strings.Contains(text, "memcached: "+addr+"\n") {
		t.Fatalf("no memcached address in:\n%s", text)
	}
	// One line per process: name, address, pid, log.
	var pids []int
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) == 4 && f[3] == filepath.Join(data, f[0]+".log") {
			pid, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("bad pid in %q", l)
			}
			pids = append(pids, pid)
		}
	}
	if len(pids) != 4 { // manager, 2 servers, gateway
		t.Fatalf("want 4 processes in:\n%s", text)
	}

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	fmt.Fprintf(conn, "set hello 0 0 5\r\nworld\r\nget hello\r\n")
	var got strings.Builder
	for !strings.HasSuffix(got.String(), "END\r\n") {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, got.String())
		}
		got.WriteString(l)
	}
	conn.Close()
	if want := "STORED\r\nVALUE hello 0 5\r\nworld\r\nEND\r\n"; got.String() != want {
		t.Fatalf("memcached said %q, want %q", got.String(), want)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			b, _ := os.ReadFile(outPath)
			t.Fatalf("kumo-local exit: %v\n%s", waitErr, b)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("kumo-local did not exit after SIGINT")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child %d still exists after kumo-local exited (%v)", pid, err)
		}
	}
	b, _ := os.ReadFile(outPath)
	if !strings.HasSuffix(string(b), "kumo-local: everything stopped\n") {
		t.Errorf("output ends:\n%s", b)
	}
}
