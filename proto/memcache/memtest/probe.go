package memtest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ProbeTimeout bounds one probe.py run (it takes about 20 s).
var ProbeTimeout = 2 * time.Minute

// ProbeCases is the number of edge cases probe.py sends.
const ProbeCases = 67

// ProbeAllow lists the probe rows where kumo deliberately differs from
// memcached 1.6.18, with the exact reply kumo gives instead.
var ProbeAllow = map[string]string{}

// probeNorm is applied to both sides before comparing: CAS uniques and TTLs
// depend on the server's history and clock, and the version string is
// ours to choose. me's la (seconds since the last access) reads 1 when a
// second turns between the set and the me (seen once under make test).
var probeNorm = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`VERSION [^\\]*\\r\\n`), `VERSION <v>\r\n`},
	{regexp.MustCompile(`(VALUE \S+ \d+ \d+) \d+\\r\\n`), `$1 <cas>\r\n`},
	{regexp.MustCompile(` c\d+`), ` c<cas>`},
	{regexp.MustCompile(`cas=\d+`), `cas=<cas>`},
	{regexp.MustCompile(`HD t\d+`), `HD t<ttl>`},
	{regexp.MustCompile(` la=[01] `), ` la=<0|1> `},
}

func normProbe(s string) string {
	for _, n := range probeNorm {
		s = n.re.ReplaceAllString(s, n.repl)
	}
	return s
}

// ProbeRow is one row of probe.py's Markdown table.
type ProbeRow struct{ Name, Sent, Reply, Closed string }

// ParseProbe reads probe.py's table into rows by case name.
func ParseProbe(out []byte) map[string]ProbeRow {
	rows := map[string]ProbeRow{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| case ") {
			continue
		}
		f := strings.Split(line, " | ") // | name | `sent` | `reply` | closed |
		if len(f) < 4 {
			continue
		}
		rows[strings.TrimPrefix(f[0], "| ")] = ProbeRow{
			Name:   strings.TrimPrefix(f[0], "| "),
			Sent:   f[1],
			Reply:  strings.Join(f[2:len(f)-1], " | "),
			Closed: strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f[len(f)-1]), "|")),
		}
	}
	return rows
}

// RunProbe runs `/usr/bin/python3 probe.py addr` and returns its output.
// It skips t if python3 is missing (fails with KUMO_REQUIRE_TOOLS=1).
func RunProbe(t testing.TB, probePath, addr string) []byte {
	t.Helper()
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		if os.Getenv("KUMO_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s missing", py)
		}
		t.Skipf("%s missing", py)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, probePath, addr).CombinedOutput()
	if err != nil {
		t.Fatalf("probe.py: %v\n%s", err, out)
	}
	return out
}

// CheckProbe runs dir/probe.py against addr and compares every row with
// dir/memcached-1.6.18-golden.md after normalisation, allowing only the
// differences in ProbeAllow. It also requires the stats fields clients
// read. The server must be fresh (rows depend on earlier rows) and use the
// real clock (one case waits 2.2 s for a delayed flush_all).
func CheckProbe(t testing.TB, dir, addr string) {
	t.Helper()
	golden, err := os.ReadFile(filepath.Join(dir, "memcached-1.6.18-golden.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := RunProbe(t, filepath.Join(dir, "probe.py"), addr)
	want, got := ParseProbe(golden), ParseProbe(out)
	if len(want) != ProbeCases || len(got) != len(want) {
		t.Fatalf("rows: golden %d, ours %d, want %d each\n%s", len(want), len(got), ProbeCases, out)
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("row %q missing", name)
			continue
		}
		wantReply := normProbe(w.Reply)
		if a, ok := ProbeAllow[name]; ok {
			wantReply = a
		}
		if normProbe(g.Reply) != wantReply || g.Closed != w.Closed {
			t.Errorf("%s:\n sent %s\n got  %s closed=%q\n want %s closed=%q", name, g.Sent, g.Reply, g.Closed, wantReply, w.Closed)
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
