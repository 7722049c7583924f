package integration

import (
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
						ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
						cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join(root, "scripts", run.script),
							kport, mport, "-n", run.n, "-seed", seed, "-mode", mode, "-pipe", run.pipe)
						out, err := cmd.CombinedOutput()
						cancel()
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
