package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kumofs/internal/localcluster"
	"kumofs/proto/memcache/memtest"
)

// Ensure that a cluster answers like memcached 1.6.18: random text, meta
// and binary commands (valid and malformed, one at a time and pipelined)
// go to a 3-server cluster's gateway and to a memcached, and every reply
// must match after renaming CAS uniques (scripts/diff-memcached.py and
// scripts/diff-memcached-binary.py; their docs list what they leave out).
// Through a kumo-gateway and an embedded gateway. Fixed seeds: a failure
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
					for _, seed := range []string{"1", "2"} {
						ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
						cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join(root, "scripts", run.script),
							kport, mport, "-n", run.n, "-seed", seed, "-mode", mode, "-pipe", run.pipe)
						out, err := cmd.CombinedOutput()
						cancel()
						if err != nil {
							t.Fatalf("%s -seed %s -mode %s -pipe %s: %v\n%s", run.script, seed, mode, run.pipe, err, out)
						}
					}
				}
			}
		})
	}
}
