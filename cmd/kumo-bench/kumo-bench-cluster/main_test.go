package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kumofs/proto/memcache/memtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("output differs from %s:\n%s", path, got)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestTables(t *testing.T) {
	c := &config{dur: 10 * time.Second, rounds: 2, conns: 16, size: 1024, keys: 10000,
		loadStart: "1.00 0.50 0.25 1/100 42", loadEnd: "2.00 1.00 0.50 1/100 43"}
	loads := []load{{name: "90% gets"}, {name: "100% sets"}}
	targets := []*target{{name: "memcached"}, {name: "kumo 1 server"}, {name: "kumo 3 servers"}}
	rep := func(ops float64) report { return report{OpsPerSec: ops, P50: 100, P99: 900, HitRate: 1} }
	results := [][][]report{
		{{rep(100000), rep(80000)}, {rep(70000), rep(60000)}, {rep(20000), rep(30000)}},
		{{rep(90000), rep(90000)}, {rep(9000), rep(11000)}, {rep(30000), {OpsPerSec: 28000, Errors: 2}}},
	}
	var b bytes.Buffer
	printTables(&b, c, loads, targets, results)
	golden(t, "tables.golden", b.Bytes())
}

func TestParse(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-rounds", "0"}, &stdout, &stderr); code != 1 ||
		stderr.String() != "error: need -rounds >= 1 and -t > 0\n" {
		t.Fatalf("code %d stderr %q", code, stderr.String())
	}
	stderr.Reset()
	want := "error: -only: unknown target \"2\" (want twemproxy, 1, 3, 1e, 3e)\n"
	if code := run(context.Background(), []string{"-only", "1e,2"}, &stdout, &stderr); code != 1 || stderr.String() != want {
		t.Fatalf("code %d stderr %q, want %q", code, stderr.String(), want)
	}
	stderr.Reset()
	dir := t.TempDir()
	want = "error: kumo-bench not found in " + dir + " (run make build, or give -B the folder of the kumo binaries)\n"
	if code := run(context.Background(), []string{"-B", dir}, &stdout, &stderr); code != 1 || stderr.String() != want {
		t.Fatalf("code %d stderr %q, want %q", code, stderr.String(), want)
	}
}

func TestWants(t *testing.T) {
	tests := []struct {
		only string
		id   string
		want bool
	}{
		{"", "3e", true},
		{"1e", "1e", true},
		{"1e", "1", false},
		{"twemproxy,3", "3", true},
		{"twemproxy,3", "3e", false},
	}
	for _, tt := range tests {
		c := &config{only: tt.only}
		if got := c.wants(tt.id); got != tt.want {
			t.Errorf("-only %q: wants(%q) = %v, want %v", tt.only, tt.id, got, tt.want)
		}
	}
}

// fakeBins creates dir holding the binaries, all but skip.
func fakeBins(t *testing.T, dir, skip string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range binaries {
		if b != skip {
			if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Ensure that -B is resolved from the working directory, that without it
// bin is also found at the module root, and that the error names the
// missing binary.
func TestFindBinDir(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module kumofs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fakeBins(t, filepath.Join(root, "bin"), "")
	fakeBins(t, filepath.Join(root, "sub", "partial"), "kumo-gateway")
	fakeBins(t, filepath.Join(root, "sub", "full"), "")
	t.Chdir(filepath.Join(root, "sub"))
	tests := []struct {
		dir      string
		explicit bool
		want     string // "" = error
		err      string
	}{
		{"bin", false, filepath.Join(root, "bin"), ""},
		{"full", true, filepath.Join(root, "sub", "full"), ""},
		{"full", false, filepath.Join(root, "sub", "full"), ""},
		{"../bin", true, filepath.Join(root, "bin"), ""},
		{"bin", true, "", "kumo-bench not found in " + filepath.Join(root, "sub", "bin") +
			" (run make build, or give -B the folder of the kumo binaries)"},
		{"partial", true, "", "kumo-gateway not found in " + filepath.Join(root, "sub", "partial") +
			" (run make build, or give -B the folder of the kumo binaries)"},
		{"partial", false, "", "kumo-gateway not found in " + filepath.Join(root, "sub", "partial") +
			" (run make build, or give -B the folder of the kumo binaries)"},
	}
	for _, tt := range tests {
		got, err := findBinDir(tt.dir, tt.explicit)
		if tt.want != "" {
			if err != nil || got != tt.want {
				t.Errorf("findBinDir(%q, %v) = %q, %v; want %q", tt.dir, tt.explicit, got, err, tt.want)
			}
			continue
		}
		if err == nil || err.Error() != tt.err {
			t.Errorf("findBinDir(%q, %v) = %q, %v; want error %q", tt.dir, tt.explicit, got, err, tt.err)
		}
	}
}

func TestTwemproxyConfig(t *testing.T) {
	want := "kumo_bench:\n  listen: 127.0.0.1:7001\n  hash: fnv1a_64\n  distribution: ketama\n" +
		"  timeout: 2000\n  servers:\n   - 127.0.0.1:7002:1\n"
	if got := twemproxyConfig("127.0.0.1:7001", "127.0.0.1:7002"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// Ensure that the twemproxy target reaches the memcached behind it: a set
// through the proxy is read back from memcached itself.
func TestStartTwemproxy(t *testing.T) {
	memtest.RequireTool(t, "memcached")
	memtest.RequireTool(t, "nutcracker")
	ctx := context.Background()
	mc, mcAddr, err := startMemcached(ctx, "memcached")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mc.Process.Kill(); mc.Wait() })
	tp, addr, err := startTwemproxy(ctx, "nutcracker", mcAddr, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.Process.Kill(); tp.Wait() })
	if got := roundTrip(t, addr, "set k 5 0 2\r\nhi\r\n", 1); got != "STORED\r\n" {
		t.Fatalf("set through twemproxy: %q", got)
	}
	if got := roundTrip(t, mcAddr, "get k\r\n", 3); got != "VALUE k 5 2\r\nhi\r\nEND\r\n" {
		t.Fatalf("get from memcached: %q", got)
	}
}

// roundTrip sends req to addr and returns the first lines lines of the reply.
func roundTrip(t *testing.T, addr, req string, lines int) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(nc)
	var b strings.Builder
	for range lines {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%q after %q: %v", req, b.String(), err)
		}
		b.WriteString(l)
	}
	return b.String()
}

// Ensure that kumo-bench leads a session of its own with -client-session:
// the fake reports 1 when its session id is its own process id.
func TestClientSession(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	kb := filepath.Join(t.TempDir(), "kumo-bench")
	script := "#!/bin/sh\nread -r _ _ _ _ _ sid _ < /proc/$$/stat\n" +
		"if [ \"$sid\" = \"$$\" ]; then echo '{\"ops_per_sec\": 1}'; else echo '{\"ops_per_sec\": 0}'; fi\n"
	if err := os.WriteFile(kb, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, own := range []bool{false, true} {
		rep, err := kumoBench(context.Background(), kb, own, nil)
		if err != nil {
			t.Fatal(err)
		}
		if leads := rep.OpsPerSec == 1; leads != own {
			t.Errorf("ownSession %v: kumo-bench leads its session: %v", own, leads)
		}
	}
}
