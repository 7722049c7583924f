package integration

import (
	"strconv"
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
	eachGateway(t, localcluster.Options{Servers: 1}, func(t *testing.T, c *localcluster.Cluster) {
		m := dial(t, c.Gateway())
		// stats returns bytes_read, bytes_written and the length of its
		// own reply (not counted yet when the counters were read).
		stats := func() (read, written uint64, n int) {
			m.send("stats\r\n")
			for {
				l := m.line()
				n += len(l)
				if l == "END\r\n" {
					return read, written, n
				}
				f := strings.Fields(l)
				if len(f) == 3 && f[1] == "bytes_read" {
					read, _ = strconv.ParseUint(f[2], 10, 64)
				}
				if len(f) == 3 && f[1] == "bytes_written" {
					written, _ = strconv.ParseUint(f[2], 10, 64)
				}
			}
		}
		// A readiness probe that timed out may still be answered late
		// on its own connection: measure again if a count is off.
		var got string
		for try := 0; try < 5; try++ {
			if r := m.cmd("stats reset\r\n"); r != "RESET\r\n" {
				t.Fatalf("stats reset: %q", r)
			}
			// Read since the reset: "stats\r\n"; written: "RESET\r\n".
			r0, w0, n0 := stats()
			if r := m.cmd("get nokey\r\n"); r != "END\r\n" {
				t.Fatalf("get: %q", r)
			}
			// Then "get nokey\r\n" and "stats\r\n" in; the first
			// stats reply and "END\r\n" out.
			r1, w1, _ := stats()
			if r0 == 7 && w0 == 7 && r1-r0 == 18 && w1-w0 == uint64(n0)+5 {
				return
			}
			got = strconv.Quote(strings.Join([]string{strconv.FormatUint(r0, 10), strconv.FormatUint(w0, 10),
				strconv.FormatUint(r1, 10), strconv.FormatUint(w1, 10), strconv.Itoa(n0)}, " "))
		}
		t.Fatalf("bytes_read/bytes_written never as expected; last read0 written0 read1 written1 reply0: %s", got)
	})
}
