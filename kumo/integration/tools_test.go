package integration

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/proto/memcache/memtest"
)

// Ensure that memccapable (libmemcached's protocol conformance check)
// passes all 54 ascii and binary cases against the real gateway.
func TestMemccapableGateway(t *testing.T) {
	t.Parallel()
	memtest.RequireTool(t, "memccapable")
	c := localcluster.StartT(t, localcluster.Options{})
	memtest.RunMemccapable(t, c.Gateway())
}

// Ensure that memccapable passes against the gateway embedded in a server,
// which answers its own server's keys in place.
func TestMemccapableEmbedded(t *testing.T) {
	t.Parallel()
	memtest.RequireTool(t, "memccapable")
	c := localcluster.StartT(t, localcluster.Options{EmbeddedGateway: true})
	memtest.RunMemccapable(t, c.Gateway())
}

// requirePymemcache skips (or fails under KUMO_REQUIRE_TOOLS=1) when
// Debian's python3-pymemcache is missing, after trying to install it.
func requirePymemcache(t *testing.T) {
	t.Helper()
	ok := func() bool { return exec.Command("/usr/bin/python3", "-c", "import pymemcache").Run() == nil }
	if ok() {
		return
	}
	memtest.RequireTool(t, "memccapable") // runs the install script
	if ok() {
		return
	}
	if os.Getenv("KUMO_REQUIRE_TOOLS") == "1" {
		t.Fatal("python3-pymemcache is not installed (KUMO_REQUIRE_TOOLS=1)")
	}
	t.Skip("python3-pymemcache is not installed")
}

// Ensure that a real client library works against the cluster: get_many,
// gets/cas, incr/decr, add/replace, flags, expiry.
func TestPymemcacheScenario(t *testing.T) {
	t.Parallel()
	requirePymemcache(t)
	c := localcluster.StartT(t, localcluster.Options{})
	cmd := exec.Command("/usr/bin/python3", "testdata/pymemcache_scenario.py", c.Gateway())
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
	}
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("pymemcache scenario: %v", err)
	}
}
