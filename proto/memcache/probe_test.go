package memcache_test

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

func TestMemccapable(t *testing.T) {
	addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil), Logf: t.Logf})
	memtest.RunMemccapable(t, addr)
}

// probeRow is one row of probe.py's table.
type probeRow struct{ name, sent, reply, closed string }

func parseProbe(t *testing.T, out []byte) map[string]probeRow {
	t.Helper()
	rows := map[string]probeRow{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| case ") {
			continue
		}
		// | name | `sent` | `reply` | closed |
		f := strings.Split(line, " | ")
		if len(f) < 4 {
			t.Fatalf("bad probe row %q", line)
		}
		closed := strings.TrimSuffix(strings.TrimSpace(f[len(f)-1]), "|")
		r := probeRow{
			name:   strings.TrimPrefix(f[0], "| "),
			sent:   f[1],
			reply:  strings.Join(f[2:len(f)-1], " | "),
			closed: strings.TrimSpace(closed),
		}
		rows[r.name] = r
	}
	return rows
}

// Normalisations applied to both sides before comparing: CAS uniques and
// TTLs depend on the server's history and clock, and the version string is
// ours to choose (memcache.DefaultVersion, "1.6.18-kumo").
var probeNorm = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`VERSION [^\\]*\\r\\n`), `VERSION <v>\r\n`},
	{regexp.MustCompile(`(VALUE \S+ \d+ \d+) \d+\\r\\n`), `$1 <cas>\r\n`},
	{regexp.MustCompile(` c\d+`), ` c<cas>`},
	{regexp.MustCompile(`cas=\d+`), `cas=<cas>`},
	{regexp.MustCompile(`HD t\d+`), `HD t<ttl>`},
}

// probeAllow lists the rows where kumo deliberately differs from memcached
// 1.6.18, with the exact reply kumo gives instead.
var probeAllow = map[string]string{
	// memcached rewrites a shrinking counter in place and pads it with
	// spaces ("99 "); kumo stores the plain decimal. Clients read the
	// incr/decr reply, which is the same.
	"incr/decr": "`STORED\\r\\n105\\r\\n99\\r\\nVALUE n 0 2\\r\\n99\\r\\nEND\\r\\n0\\r\\n`",
}

// TestProbeGolden runs the team's edge-case prober against the front end
// and compares every row with memcached 1.6.18's golden reply. The
// stats listings at the end of the table are memcached-internal (slab,
// LRU, libevent counters) and are not compared; only the field names
// clients read are required.
func TestProbeGolden(t *testing.T) {
	if testing.Short() {
		t.Skip("probe.py takes ~20 s")
	}
	golden, err := os.ReadFile("testdata/memcached-1.6.18-golden.md")
	if err != nil {
		t.Fatal(err)
	}
	addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil), Logf: t.Logf})
	out := memtest.RunProbe(t, "testdata/probe.py", addr)
	want, got := parseProbe(t, golden), parseProbe(t, out)
	if len(want) != 67 || len(got) != len(want) { // probe.py has 67 cases (the research notes say 68)
		t.Fatalf("rows: golden %d, ours %d, want 67 each\n%s", len(want), len(got), out)
	}
	norm := func(s string) string {
		for _, n := range probeNorm {
			s = n.re.ReplaceAllString(s, n.repl)
		}
		return s
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("row %q missing", name)
			continue
		}
		wantReply := norm(w.reply)
		if a, ok := probeAllow[name]; ok {
			wantReply = a
		}
		if norm(g.reply) != wantReply || g.closed != w.closed {
			t.Errorf("%s:\n sent %s\n got  %s closed=%q\n want %s closed=%q", name, g.sent, g.reply, g.closed, wantReply, w.closed)
		}
	}
	m := regexp.MustCompile("`stats` returns \\d+ fields: (.*)").FindSubmatch(out)
	if m == nil {
		t.Fatalf("no stats line in probe output")
	}
	have := map[string]bool{}
	for _, f := range strings.Split(string(m[1]), ", ") {
		have[f] = true
	}
	for _, f := range strings.Fields("pid uptime time version curr_connections total_connections cmd_get cmd_set get_hits get_misses curr_items total_items bytes evictions limit_maxbytes threads cmd_touch") {
		if !have[f] {
			t.Errorf("stats lacks %s", f)
		}
	}
}
