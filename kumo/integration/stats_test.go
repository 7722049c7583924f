package integration

import (
	"strings"
	"testing"

	"kumofs/internal/localcluster"
)

// Ensure that a gateway's stats count the client traffic exactly, as
// memcached's bytes_read and bytes_written do (monitoring tools graph
// them), through the event loop and connection goroutines alike, and that
// stats reset clears them.
func TestStatsBytes(t *testing.T) {
	t.Parallel()
	for _, emb := range []bool{false, true} {
		name := "kumo-gateway"
		if emb {
			name = "embedded"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := localcluster.StartT(t, localcluster.Options{Servers: 1, EmbeddedGateway: emb})
			m := dial(t, c.Gateway())
			if got := m.cmd("stats reset\r\n"); got != "RESET\r\n" {
				t.Fatalf("stats reset: %q", got)
			}
			if got := m.cmd("get nokey\r\n"); got != "END\r\n" {
				t.Fatalf("get: %q", got)
			}
			m.send("stats\r\n")
			stats := map[string]string{}
			for {
				l := m.line()
				if l == "END\r\n" {
					break
				}
				if f := strings.Fields(l); len(f) == 3 && f[0] == "STAT" {
					stats[f[1]] = f[2]
				}
			}
			// Read: "get nokey\r\n" and "stats\r\n"; written: "RESET\r\n"
			// (after the reset) and "END\r\n"; this reply is not yet.
			if stats["bytes_read"] != "18" || stats["bytes_written"] != "12" {
				t.Fatalf("bytes_read %q bytes_written %q, want 18 and 12", stats["bytes_read"], stats["bytes_written"])
			}
		})
	}
}
