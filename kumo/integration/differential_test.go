package integration

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/kumo/wire"
	"kumofs/proto/memcache/memtest"
	"kumofs/proto/rpc"
)

// Ensure that a cluster answers like memcached 1.6.18: random text, meta
// and binary commands (valid and malformed, one at a time and pipelined)
// go to a 3-server cluster's gateway and to a memcached, and every reply
// must match after renaming CAS uniques (scripts/diff-memcached.py and
// scripts/diff-memcached-binary.py; their docs list what they leave out).
// Through a kumo-gateway and an embedded gateway. After each run every
// server must hold the same copy of every key. Fixed seeds: a failure
// names the seed, and the script run by hand with it replays the same
// commands.
func TestDifferentialMemcached(t *testing.T) {
	bin := memtest.RequireTool(t, "memcached")
	requirePackage(t, "python3", func() bool { return exec.Command("/usr/bin/python3", "-c", "pass").Run() == nil })
	root, err := localcluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, embedded := range []bool{false, true} {
		name := "kumo-gateway"
		if embedded {
			name = "embedded"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := localcluster.StartT(t, localcluster.Options{EmbeddedGateway: embedded})
			mc := memtest.StartMemcached(t, bin)
			_, mport, _ := strings.Cut(mc, ":")
			_, kport, _ := strings.Cut(c.Gateway(), ":")
			for _, run := range []struct{ script, n, pipe string }{
				{"diff-memcached.py", "1500", "1"},
				{"diff-memcached.py", "300", "8"},
				{"diff-memcached-binary.py", "1500", "1"},
				{"diff-memcached-binary.py", "300", "8"},
			} {
				for _, mode := range []string{"cas", "touch"} {
					for _, seed := range diffSeeds() {
						runScript := func() ([]byte, error) {
							ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
							defer cancel()
							return exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join(root, "scripts", run.script),
								kport, mport, "-n", run.n, "-seed", seed, "-mode", mode, "-pipe", run.pipe).CombinedOutput()
						}
						out, err := runScript()
						if err != nil && memcachedIncrNoise(out) {
							// memcached's own nondeterminism (the scripts'
							// docs): the same commands again must agree.
							t.Logf("%s -seed %s -mode %s -pipe %s: memcached alone answered an incr or decr non-numeric; running it again:\n%s",
								run.script, seed, mode, run.pipe, out)
							out, err = runScript()
						}
						if err != nil {
							t.Fatalf("%s -seed %s -mode %s -pipe %s: %v\n%s", run.script, seed, mode, run.pipe, err, out)
						}
						checkReplicasAgree(t, c, diffKeys)
					}
				}
			}
		})
	}
}

// memcachedIncrNoise reports whether a script's failure may be the kind
// memcached 1.6.18 shows against itself under load: memcached's replies
// have more incr or decr answers "non-numeric" than kumo's. The caller
// runs the same commands once more, and that run must agree entirely.
func memcachedIncrNoise(out []byte) bool {
	var kumo, mc string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "kumo:"); ok {
			kumo = strings.ToLower(v)
		}
		if v, ok := strings.CutPrefix(l, "memcached:"); ok {
			mc = strings.ToLower(v)
		}
	}
	return strings.Count(mc, "non-numeric") > strings.Count(kumo, "non-numeric")
}

// diffSeeds are the seeds each script runs with: 1 and 2, or the
// space-separated list in $KUMO_DIFF_SEEDS (for longer runs by hand).
func diffSeeds() []string {
	if s := strings.Fields(os.Getenv("KUMO_DIFF_SEEDS")); len(s) > 0 {
		return s
	}
	return []string{"1", "2"}
}

// diffKeys are the keys the diff-memcached scripts use ("abc" is the
// base64 meta key YWJj).
var diffKeys = []string{"k0", "k1", "k2", "num", "n2", "abc"}

// checkReplicasAgree fails t unless every server of c holds the same
// visible state of each key: all three are owners of every key, and each
// acknowledged write reached all of them. A tombstone's clock is not
// compared (a key swept by a flush_all carries each server's own flush
// point), nor a value's expiry against the clock.
func checkReplicasAgree(t *testing.T, c *localcluster.Cluster, keys []string) {
	t.Helper()
	n := c.NumServers()
	clients := make([]*rpc.Client, n)
	for i := range clients {
		clients[i] = rpc.Dial(c.Server(i).Addr, rpc.Options{CallTimeout: 5 * time.Second})
		defer clients[i].Close()
	}
	for _, k := range keys {
		var first wire.Value
		var firstOK bool
		for i, cl := range clients {
			v, ok := getRaw(t, cl, k)
			live := ok && !v.Tombstone
			if i == 0 {
				first, firstOK = v, live
				continue
			}
			if live != firstOK || live && (v.Clock != first.Clock || !bytes.Equal(v.Data, first.Data) || v.Flags != first.Flags ||
				v.Exptime != first.Exptime || v.Stale != first.Stale || v.TokenSent != first.TokenSent) {
				t.Fatalf("key %q: %s holds %+v (live %v), %s holds %+v (live %v)", k,
					c.Server(0).Addr, first, firstOK, c.Server(i).Addr, v, live)
			}
		}
	}
}

// Ensure that changing the cluster under a client changes none of its
// answers: the differential script runs against a 3-server cluster while
// a server is added, one is killed with SIGKILL (its writes in flight are
// retried on the next coordinator, counted once), the dead one is
// detached and another added, each step at a fixed point of the script's
// progress; every reply must still be memcached's. Not in make test (make
// test-rebalance-diff): now and then memcached itself answers an incr or
// decr "non-numeric" under load where kumo (and another memcached) gives
// a number (the scripts' docs). It showed an append applied twice across a
// ring change until rebalance copies carried request ids, a retried delete
// answered wrongly until catch-ups carried them too, a retried add
// answered STORED for a key that existed, and flush_all missing a server
// attached or answering SERVER_ERROR for one killed while it ran.
func TestDifferentialDuringRebalance(t *testing.T) {
	if os.Getenv("KUMO_REBALANCE_DIFF") != "1" {
		t.Skip("KUMO_REBALANCE_DIFF=1 runs it (make test-rebalance-diff): it shows a known gap now and then")
	}
	bin := memtest.RequireTool(t, "memcached")
	requirePackage(t, "python3", func() bool { return exec.Command("/usr/bin/python3", "-c", "pass").Run() == nil })
	root, err := localcluster.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	seeds := []string{"5"}
	if os.Getenv("KUMO_DIFF_SEEDS") != "" {
		seeds = diffSeeds()
	}
	for _, seed := range seeds {
		for _, script := range []string{"diff-memcached.py", "diff-memcached-binary.py"} {
			t.Run(script+"/"+seed, func(t *testing.T) {
				t.Parallel()
				diffDuringRebalance(t, bin, filepath.Join(root, "scripts", script), seed)
			})
		}
	}
}

func diffDuringRebalance(t *testing.T, bin, script, seed string) {
	c := localcluster.StartT(t, localcluster.Options{})
	mc := memtest.StartMemcached(t, bin)
	_, mport, _ := strings.Cut(mc, ":")
	_, kport, _ := strings.Cut(c.Gateway(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", script,
		kport, mport, "-n", "5000", "-seed", seed, "-mode", "cas", "-pipe", "4", "-progress", "1000")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	steps := map[string]func() error{
		"progress 1000": func() error { return addAndAttach(c) },
		"progress 2000": func() error { return c.KillServer(1) },
		"progress 3000": func() error { _, err := c.Ctl("detach"); return err },
		"progress 4000": func() error { return addAndAttach(c) },
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if step := steps[line]; step != nil {
			if err := step(); err != nil {
				t.Errorf("%s: %v", line, err)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s%s", filepath.Base(script), err, out.Bytes(), stderr.Bytes())
	}
	if len(steps) > 0 && !strings.Contains(out.String(), "progress 4000") {
		t.Fatalf("the script did not report its progress:\n%s", out.Bytes())
	}
}

// addAndAttach starts one more server and attaches it.
func addAndAttach(c *localcluster.Cluster) error {
	if _, err := c.AddServer(); err != nil {
		return err
	}
	_, err := c.Ctl("attach")
	return err
}

// Ensure that memcachedIncrNoise tells memcached's non-numeric noise from
// other differences.
func TestMemcachedIncrNoise(t *testing.T) {
	for _, c := range []struct {
		out  string
		want bool
	}{
		{"difference at request 445\n  kumo:      [('0x5', 0, 0, 'c', b'', b'', b'4')]\n" +
			"  memcached: [('0x5', 6, 0, '0', b'', b'', b'Non-numeric server-side value for incr or decr')]\n", true},
		{"  kumo:      b'18446744073709551615\\r\\n'\n  memcached: b'CLIENT_ERROR cannot increment or decrement non-numeric value\\r\\n'\n", true},
		{"  kumo:      b'STORED\\r\\n'\n  memcached: b'NOT_STORED\\r\\n'\n", false},
		{"  kumo:      b'CLIENT_ERROR cannot increment or decrement non-numeric value\\r\\n'\n" +
			"  memcached: b'CLIENT_ERROR cannot increment or decrement non-numeric value\\r\\nEND\\r\\n'\n", false},
	} {
		if got := memcachedIncrNoise([]byte(c.out)); got != c.want {
			t.Errorf("memcachedIncrNoise(%q) = %v, want %v", c.out, got, c.want)
		}
	}
}
