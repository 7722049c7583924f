package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"kumofs/internal/localcluster"
)

// twemproxyName names the target that reaches the same memcached through
// twemproxy (Debian's nutcracker): memcached with a proxy in front, the
// topology kumo is an alternative to, and the fair comparison for a
// kumo-gateway process in front of its servers (one process hop more than
// memcached alone).
const twemproxyName = "memcached via twemproxy"

// twemproxyConfig is nutcracker's configuration for one pool at listen
// in front of the memcached at backend.
func twemproxyConfig(listen, backend string) string {
	return "kumo_bench:\n" +
		"  listen: " + listen + "\n" +
		"  hash: fnv1a_64\n" +
		"  distribution: ketama\n" +
		"  timeout: 2000\n" +
		"  servers:\n" +
		"   - " + backend + ":1\n"
}

// startTwemproxy starts prog (nutcracker) on free 127.0.0.1 ports in front
// of the memcached at backend, with its configuration and log in dir, and
// waits until it accepts connections.
func startTwemproxy(ctx context.Context, prog, backend, dir string) (*exec.Cmd, string, error) {
	path, err := exec.LookPath(prog)
	if err != nil {
		return nil, "", err
	}
	port, err := localcluster.FreePort()
	if err != nil {
		return nil, "", err
	}
	stats, err := localcluster.FreePort()
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := filepath.Join(dir, "twemproxy.yml")
	if err := os.WriteFile(conf, []byte(twemproxyConfig(addr, backend)), 0o644); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(path, "-c", conf, "-a", "127.0.0.1", "-s", strconv.Itoa(stats),
		"-o", filepath.Join(dir, "twemproxy.log"))
	if err := startListening(ctx, cmd, addr); err != nil {
		return nil, "", fmt.Errorf("twemproxy on %s: %w (log in %s)", addr, err, dir)
	}
	return cmd, addr, nil
}
