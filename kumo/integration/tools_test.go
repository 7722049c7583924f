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

// Ensure that Perl's Cache::Memcached (Debian libcache-memcached-perl)
// works against the cluster: multi-key gets, counters, add/replace/delete,
// references stored with flags, binary-safe values.
func TestPerlScenario(t *testing.T) {
	t.Parallel()
	requirePackage(t, "libcache-memcached-perl", func() bool {
		return exec.Command("perl", "-MCache::Memcached", "-e1").Run() == nil
	})
	c := localcluster.StartT(t, localcluster.Options{})
	runScenario(t, "perl", "perl_scenario.pl", c.Gateway())
}

// requirePython skips (or fails under KUMO_REQUIRE_TOOLS=1) when the
// Debian package pkg that provides the Python module mod is missing, after
// trying to install it.
func requirePython(t *testing.T, mod, pkg string) {
	t.Helper()
	requirePackage(t, pkg, func() bool { return exec.Command("/usr/bin/python3", "-c", "import "+mod).Run() == nil })
}

// requirePackage skips (or fails under KUMO_REQUIRE_TOOLS=1) unless ok
// reports the Debian package pkg usable, after trying to install it.
func requirePackage(t *testing.T, pkg string, ok func() bool) {
	t.Helper()
	if ok() {
		return
	}
	memtest.RequireTool(t, "memccapable") // runs the install script
	if ok() {
		return
	}
	if os.Getenv("KUMO_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is not installed (KUMO_REQUIRE_TOOLS=1)", pkg)
	}
	t.Skipf("%s is not installed", pkg)
}

// runScenario runs testdata/SCRIPT with interpreter against addr with a
// deadline and fails the test unless it exits 0.
func runScenario(t *testing.T, interpreter, script, addr string) {
	t.Helper()
	cmd := exec.Command(interpreter, "testdata/"+script, addr)
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
		t.Fatalf("%s: %v", script, err)
	}
}

// Ensure that libmemcached, through pylibmc, works against the cluster in
// both protocols: multi-key sets, gets and deletes (in the binary protocol
// runs of quiet gets and a NOOP, served in windows), counters, add and
// replace, append, gets/cas, flags.
func TestPylibmcScenario(t *testing.T) {
	t.Parallel()
	requirePython(t, "pylibmc", "python3-pylibmc")
	c := localcluster.StartT(t, localcluster.Options{})
	runScenario(t, "/usr/bin/python3", "pylibmc_scenario.py", c.Gateway())
}

// Ensure that a real client library works against the cluster: get_many,
// gets/cas, incr/decr, add/replace, flags, expiry.
func TestPymemcacheScenario(t *testing.T) {
	t.Parallel()
	requirePython(t, "pymemcache", "python3-pymemcache")
	c := localcluster.StartT(t, localcluster.Options{})
	runScenario(t, "/usr/bin/python3", "pymemcache_scenario.py", c.Gateway())
}
