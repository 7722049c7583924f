package integration

import (
	"strconv"
	"strings"
	"testing"
	"time"

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

// Ensure that curr_items and bytes count the items a client can read,
// cluster-wide: deleted and flushed keys (tombstones on the servers) are
// not items, as memcached's curr_items and bytes drop on delete and
// flush_all.
func TestStatsCurrItems(t *testing.T) {
	t.Parallel()
	eachGateway(t, localcluster.Options{}, func(t *testing.T, c *localcluster.Cluster) {
		m := dial(t, c.Gateway())
		stat := func(name string) string {
			m.send("stats\r\n")
			v := ""
			for {
				l := m.line()
				if l == "END\r\n" {
					return v
				}
				if f := strings.Fields(l); len(f) == 3 && f[1] == name {
					v = f[2]
				}
			}
		}
		items := func() string { return stat("curr_items") }
		bytesNow := func() int {
			n, err := strconv.Atoi(stat("bytes"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		base, err := strconv.Atoi(items()) // the cluster's readiness probes leave a key or so
		if err != nil {
			t.Fatal(err)
		}
		baseBytes := bytesNow()
		for i := 0; i < 10; i++ {
			if r := m.set("ci"+strconv.Itoa(i), "v"); r != "STORED\r\n" {
				t.Fatal(r)
			}
		}
		if got := items(); got != strconv.Itoa(base+10) {
			t.Fatalf("curr_items after 10 sets: %s", got)
		}
		tenBytes := bytesNow()
		if tenBytes <= baseBytes {
			t.Fatalf("bytes after 10 sets: %d, before %d", tenBytes, baseBytes)
		}
		for i := 0; i < 4; i++ {
			if r := m.cmd("delete ci" + strconv.Itoa(i) + "\r\n"); r != "DELETED\r\n" {
				t.Fatal(r)
			}
		}
		if got := items(); got != strconv.Itoa(base+6) {
			t.Fatalf("curr_items after 4 deletes: %s", got)
		}
		// Every key has the same length and value: 4 of the 10 gone.
		if got, want := bytesNow(), tenBytes-4*(tenBytes-baseBytes)/10; got != want {
			t.Fatalf("bytes after 4 deletes: %d, want %d", got, want)
		}
		if r := m.cmd("flush_all\r\n"); r != "OK\r\n" {
			t.Fatal(r)
		}
		// The servers turn flushed values into tombstones in the
		// background, right after the OK.
		eventually(t, 10*time.Second, "curr_items and bytes 0 after flush_all", func() bool {
			return items() == "0" && bytesNow() == 0
		})
	})
}
