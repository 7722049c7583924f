package localcluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// portMu protects handed.
var (
	portMu sync.Mutex
	handed = map[int]bool{} // ports FreePort returned in this process; never again
)

// FreePort returns a TCP port on 127.0.0.1 that is free now. It picks
// below the kernel's ephemeral range when it can: a daemon restarted by a
// test must get its port back, and a port from the ephemeral range may
// meanwhile be the local end of some outgoing connection. It never returns
// a port twice in one process. Another process may still take it before it
// is used, so callers should treat a failed listen on it as retryable.
func FreePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	if lo, hi := belowEphemeral(); hi-lo >= 1000 {
		for range 100 {
			p := lo + rand.IntN(hi-lo)
			if !handed[p] && PortFree(p) {
				handed[p] = true
				return p, nil
			}
		}
	}
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("localcluster: free port: %w", err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !handed[p] {
			handed[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("localcluster: no free port")
}

// belowEphemeral returns the port range [lo, hi) between 10000 and the
// start of the kernel's ephemeral range (Linux; 32768 elsewhere).
func belowEphemeral() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				hi = n
			}
		}
	}
	return 10000, hi
}

// PortFree reports whether port can be listened on at 127.0.0.1 right now.
func PortFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// portOr returns preferred when it is non-zero and free, else a free port.
// taken holds ports already handed out in this cluster; they are skipped.
func portOr(preferred int, taken map[int]bool) (int, error) {
	if preferred > 0 && preferred < 65536 && !taken[preferred] && PortFree(preferred) {
		taken[preferred] = true
		return preferred, nil
	}
	for range 20 {
		p, err := FreePort()
		if err != nil {
			return 0, err
		}
		if !taken[p] {
			taken[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("localcluster: no free port")
}
