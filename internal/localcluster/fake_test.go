package localcluster

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The test binary doubles as every daemon and tool: TestMain dispatches on
// the name it was started under (a symlink in a fake bin dir) or on
// $LOCALCLUSTER_FAKE. The fakes speak a line protocol of their own; they
// only exercise the harness, not kumo.

const envFake = "LOCALCLUSTER_FAKE"

// fakeMain runs the fake named role and returns the exit status, or -1 when
// this process is not a fake.
func fakeMain() int {
	role := os.Getenv(envFake)
	if role == "" {
		switch b := filepath.Base(os.Args[0]); b {
		case "kumo-manager", "kumo-server", "kumo-gateway", "kumoctl", "kumostat":
			role = b
		default:
			return -1
		}
	}
	args := os.Args[1:]
	switch role {
	case "kumo-manager":
		return fakeManager(args)
	case "kumo-server":
		return fakeServer(args)
	case "kumo-gateway":
		return fakeGateway(args)
	case "kumoctl":
		return fakeCtl(args)
	case "kumostat":
		fmt.Println("fake stat", strings.Join(args, " "))
		return 0
	case "sleeper":
		return fakeSleeper(args)
	case "exit3":
		fmt.Println("exiting with 3")
		return 3
	}
	fmt.Fprintln(os.Stderr, "unknown fake", role)
	return 2
}

// flagValue returns the token after name in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == name {
			return true
		}
	}
	return false
}

// fakeLog opens the -o file (as the daemons do) or stdout.
func fakeLog(args []string) *os.File {
	if p := flagValue(args, "-o"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err == nil {
			return f
		}
	}
	return os.Stdout
}

// waitTerm blocks until SIGTERM or SIGINT.
func waitTerm() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}

// fakeSleeper logs "ready", optionally starts a grandchild (-child) and
// logs its pid, then waits for SIGTERM (unless -ignore-term) and logs
// "stopping".
func fakeSleeper(args []string) int {
	log := fakeLog(args)
	if hasFlag(args, "-ignore-term") {
		signal.Ignore(syscall.SIGTERM)
	}
	if hasFlag(args, "-child") {
		cmd := exec.Command(os.Args[0], "-o", flagValue(args, "-o"))
		cmd.Env = append(os.Environ(), envFake+"=sleeper")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(log, "child:", err)
			return 1
		}
		fmt.Fprintf(log, "child pid %d\n", cmd.Process.Pid)
	}
	fmt.Fprintln(log, "ready")
	if hasFlag(args, "-ignore-term") {
		select {}
	}
	waitTerm()
	fmt.Fprintln(log, "stopping")
	return 0
}

// fakeManager listens on -l; a line "hello ADDR" logs "new node ADDR", a
// line "attach" logs "attached" and answers "nil", a line "status" answers
// "nil" (the same on every manager, so they agree).
func fakeManager(args []string) int {
	log := fakeLog(args)
	ln, err := net.Listen("tcp", flagValue(args, "-l"))
	if err != nil {
		fmt.Fprintln(log, "listen:", err)
		return 1
	}
	var mu sync.Mutex // serializes log lines
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					f := strings.Fields(sc.Text())
					mu.Lock()
					switch {
					case len(f) == 2 && f[0] == "hello":
						fmt.Fprintf(log, "new node %s\n", f[1])
					case len(f) == 1 && f[0] == "attach":
						fmt.Fprintln(log, "attached")
						fmt.Fprintln(conn, "nil")
					case len(f) == 1 && f[0] == "status":
						fmt.Fprintln(conn, "nil")
					default:
						fmt.Fprintf(conn, "unknown %q\n", sc.Text())
					}
					mu.Unlock()
				}
			}()
		}
	}()
	fmt.Fprintln(log, "manager up")
	waitTerm()
	ln.Close()
	fmt.Fprintln(log, "manager stopping")
	return 0
}

// fakeServer listens on -l (so the port is really used), says hello to the
// manager -m and waits for SIGTERM.
func fakeServer(args []string) int {
	log := fakeLog(args)
	// $LOCALCLUSTER_BIND_FAIL names a marker file: the first server to
	// create it fails as if its port were taken.
	if m := os.Getenv("LOCALCLUSTER_BIND_FAIL"); m != "" {
		if f, err := os.OpenFile(m, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			f.Close()
			fmt.Fprintf(log, "listen tcp %s: bind: address already in use\n", flagValue(args, "-l"))
			return 1
		}
	}
	ln, err := net.Listen("tcp", flagValue(args, "-l"))
	if err != nil {
		fmt.Fprintln(log, "listen:", err)
		return 1
	}
	defer ln.Close()
	// Retry as the real servers do: the manager may not listen yet.
	var conn net.Conn
	for i := 0; ; i++ {
		conn, err = net.Dial("tcp", flagValue(args, "-m"))
		if err == nil {
			break
		}
		if i == 200 {
			fmt.Fprintln(log, "connect:", err)
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "hello %s\n", flagValue(args, "-l"))
	fmt.Fprintln(log, "connect success")
	waitTerm()
	fmt.Fprintln(log, "server stopping")
	return 0
}

// fakeGateway serves memcached text set and get from memory on -t.
func fakeGateway(args []string) int {
	log := fakeLog(args)
	ln, err := net.Listen("tcp", flagValue(args, "-t"))
	if err != nil {
		fmt.Fprintln(log, "listen:", err)
		return 1
	}
	var mu sync.Mutex // protects m
	m := map[string]string{}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					f := strings.Fields(line)
					switch {
					case len(f) == 5 && f[0] == "set":
						var n int
						fmt.Sscan(f[4], &n)
						data := make([]byte, n+2)
						if _, err := io.ReadFull(r, data); err != nil {
							return
						}
						mu.Lock()
						m[f[1]] = string(data[:n])
						mu.Unlock()
						fmt.Fprint(conn, "STORED\r\n")
					case len(f) == 2 && f[0] == "get":
						mu.Lock()
						v, ok := m[f[1]]
						mu.Unlock()
						if ok {
							fmt.Fprintf(conn, "VALUE %s 0 %d\r\n%s\r\n", f[1], len(v), v)
						}
						fmt.Fprint(conn, "END\r\n")
					case len(f) == 2 && f[0] == "delete":
						mu.Lock()
						_, ok := m[f[1]]
						delete(m, f[1])
						mu.Unlock()
						if ok {
							fmt.Fprint(conn, "DELETED\r\n")
						} else {
							fmt.Fprint(conn, "NOT_FOUND\r\n")
						}
					default:
						fmt.Fprint(conn, "ERROR\r\n")
					}
				}
			}()
		}
	}()
	fmt.Fprintln(log, "gateway up")
	waitTerm()
	ln.Close()
	return 0
}

// fakeCtl sends its command to the manager and prints the answer line.
func fakeCtl(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kumoctl MGR CMD")
		return 1
	}
	conn, err := net.DialTimeout("tcp", args[0], 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	defer conn.Close()
	fmt.Fprintln(conn, args[1])
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	fmt.Print(line)
	if line != "nil\n" {
		return 1
	}
	return 0
}
