package localcluster

import (
	"fmt"
	"net"
	"strconv"
)

// FreePort returns a TCP port on 127.0.0.1 that the kernel just handed out
// and that is free again. Another process may take it before it is used, so
// callers should treat a failed listen on it as retryable.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localcluster: free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port, nil
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
