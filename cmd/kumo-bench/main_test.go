package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/internal/benchload"
	"kumofs/internal/localcluster"
	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) { localcluster.Main(m) }

func TestParse(t *testing.T) {
	def := benchload.Config{Addr: "127.0.0.1:11211", Conns: 16, Pipeline: 1, GetRatio: 0.9, ValueSize: 1024,
		Keys: 10000, MultiGet: 1, Duration: 10 * time.Second, KeyPrefix: benchload.DefaultKeyPrefix}
	with := func(f func(c *benchload.Config)) benchload.Config { c := def; f(&c); return c }
	tests := []struct {
		args   []string
		want   benchload.Config
		code   int
		stderr string
	}{
		{args: nil, want: def, code: -1},
		{args: []string{"-s", "127.0.0.2:5", "-c", "4", "-P", "16", "-ratio", "1:0", "-d", "32", "-keys", "7",
			"-dist", "zipf", "-n", "100", "-preload", "-mget", "3", "-binary", "-verify", "-seed", "9"},
			want: with(func(c *benchload.Config) {
				c.Addr, c.Conns, c.Pipeline, c.GetRatio, c.ValueSize, c.Keys = "127.0.0.2:5", 4, 16, 0, 32, 7
				c.Zipf, c.Ops, c.Duration, c.Preload, c.MultiGet, c.Binary, c.Verify, c.Seed = 1.01, 100, 0, true, 3, true, true, 9
			}), code: -1},
		{args: []string{"-gets", "0.25", "-t", "1.5"}, want: with(func(c *benchload.Config) {
			c.GetRatio, c.Duration = 0.25, 1500*time.Millisecond
		}), code: -1},
		{args: []string{"-t", "2m", "-n", "5", "-dist", "zipf", "-zipf-s", "2"}, want: with(func(c *benchload.Config) {
			c.Duration, c.Ops, c.Zipf = 2*time.Minute, 5, 2
		}), code: -1},
		{args: []string{"--ratio=3:1"}, want: with(func(c *benchload.Config) { c.GetRatio = 0.25 }), code: -1},
		{args: []string{"-ratio", "0:0"}, code: 1, stderr: "error: argument error `-ratio': want SETS:GETS, two non-negative integers, not both 0\n"},
		{args: []string{"-ratio", "9"}, code: 1, stderr: "error: argument error `-ratio': want SETS:GETS, two non-negative integers, not both 0\n"},
		{args: []string{"-gets", "2"}, code: 1, stderr: "error: argument error `-gets': want a number within 0..1\n"},
		{args: []string{"-dist", "pareto"}, code: 1, stderr: "error: -dist: want uniform or zipf, got \"pareto\"\n"},
		{args: []string{"-dist", "zipf", "-zipf-s", "1"}, code: 1, stderr: "error: -zipf-s: want a number > 1, got \"1\"\n"},
		{args: []string{"-t", "soon"}, code: 1, stderr: "error: -t: want a duration like 10s, got \"soon\"\n"},
		{args: []string{"-n", "-1"}, code: 1, stderr: "error: -n: must not be negative\n"},
		{args: []string{"-c"}, code: 1, stderr: "error: argument error `-c': value is required\n"},
		{args: []string{"-cP"}, code: 1, stderr: "error: unexpected argument: -cP\n"},
		{args: []string{"-h"}, code: 0},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		o, code := parse(tt.args, &stdout, &stderr)
		if code != tt.code || (tt.code != 0 && stderr.String() != tt.stderr) {
			t.Errorf("parse(%q): code %d, stderr %q; want %d, %q", tt.args, code, stderr.String(), tt.code, tt.stderr)
			continue
		}
		if code == -1 && o.cfg.Addr != tt.want.Addr || code == -1 && !sameConfig(o.cfg, tt.want) {
			t.Errorf("parse(%q) = %+v, want %+v", tt.args, o.cfg, tt.want)
		}
		if code >= 0 && !strings.HasPrefix(stdout.String(), "usage: kumo-bench") {
			t.Errorf("parse(%q): stdout %q, want the usage", tt.args, stdout.String())
		}
	}
}

// sameConfig compares the fields parse sets.
func sameConfig(a, b benchload.Config) bool {
	a.Dial, b.Dial, a.Progress, b.Progress = nil, nil, nil, nil
	return a.Addr == b.Addr && a.Conns == b.Conns && a.Pipeline == b.Pipeline && a.GetRatio == b.GetRatio &&
		a.ValueSize == b.ValueSize && a.Keys == b.Keys && a.Zipf == b.Zipf && a.MultiGet == b.MultiGet &&
		a.Duration == b.Duration && a.Ops == b.Ops && a.Preload == b.Preload && a.Verify == b.Verify &&
		a.Binary == b.Binary && a.KeyPrefix == b.KeyPrefix && a.Seed == b.Seed
}

func TestUsageGolden(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if _, code := parse([]string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--help: code %d", code)
	}
	golden := filepath.Join("testdata", "usage.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(stdout.Bytes(), want) {
		t.Fatalf("usage differs from %s:\n%s", golden, stdout.Bytes())
	}
}

func TestRefuseRemote(t *testing.T) {
	for _, addr := range []string{"10.1.2.3:11211", "192.0.2.1:11211", "[2001:db8::1]:11211"} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"-s", addr, "-n", "1"}, &stdout, &stderr, false)
		if code != 1 || !strings.HasPrefix(stderr.String(), "kumo-bench: refusing a non-loopback target") {
			t.Errorf("%s: code %d stderr %q", addr, code, stderr.String())
		}
	}
	for _, addr := range []string{"127.0.0.1:1", "127.9.9.9:1", "[::1]:1", "localhost:1"} {
		if err := checkLoopback(context.Background(), addr); err != nil {
			t.Errorf("checkLoopback(%s) = %v", addr, err)
		}
	}
}

func TestRunJSON(t *testing.T) {
	addr := memtest.StartServer(t, &memcache.Server{Backend: memtest.New(nil)})
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-s", addr, "-c", "2", "-n", "500", "-preload", "-keys", "50",
		"-d", "64", "-verify", "-json", "-seed", "1"}, &stdout, &stderr, false)
	if code != 0 {
		t.Fatalf("code %d, stderr %q", code, stderr.String())
	}
	var r Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("%v: %q", err, stdout.String())
	}
	if r.Ops != 500 || r.Gets+r.Sets != 500 || r.Errors != 0 || r.Wrong != 0 || r.Preloaded != 50 ||
		r.HitRate != 1 || r.Protocol != "text" || !r.Verify || r.P50 <= 0 || r.P50 > r.P999 {
		t.Fatalf("report %+v", r)
	}
}

// staleBackend acknowledges every third set without applying it.
type staleBackend struct {
	*memtest.Backend
	n atomic.Int64
}

func (b *staleBackend) Store(ctx context.Context, mode memcache.StoreMode, it *memcache.Item) (uint64, error) {
	if b.n.Add(1)%3 == 0 {
		return 1, nil
	}
	return b.Backend.Store(ctx, mode, it)
}

func TestRunWrongExits1(t *testing.T) {
	addr := memtest.StartServer(t, &memcache.Server{Backend: &staleBackend{Backend: memtest.New(nil)}})
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-s", addr, "-c", "2", "-n", "1000", "-keys", "10",
		"-d", "64", "-ratio", "1:1", "-verify"}, &stdout, &stderr, false)
	if code != 1 || !strings.Contains(stdout.String(), "\nwrong      ") || strings.Contains(stdout.String(), "\nwrong      0\n") {
		t.Fatalf("code %d, stdout:\n%s", code, stdout.String())
	}
}

// Ensure that a bad combination of flags is reported like a bad flag (the
// README: the usage, then one "error:" line, exit 1), before any dial.
func TestRunBadCombination(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-s", "127.0.0.1:1", "-verify", "-d", "8"}, &stdout, &stderr, false)
	if code != 1 || stderr.String() != "error: verify needs values of at least 34 bytes\n" || stdout.String() != usage+"\n" {
		t.Fatalf("code %d, stderr %q, stdout %q", code, stderr.String(), stdout.String())
	}
}

func TestRunDialError(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-s", "127.0.0.1:1", "-n", "1"}, &stdout, &stderr, false)
	if code != 1 || !strings.HasPrefix(stderr.String(), "kumo-bench: dial: ") {
		t.Fatalf("code %d, stderr %q", code, stderr.String())
	}
}

// TestKillServerVerify runs a verifying load through the gateway of a
// 3-server cluster while one server is SIGKILLed: a correct cluster gives
// no wrong value (requests failing during the failover are errors, not wrong
// values). Once through a kumo-gateway (pipelined), once through the
// gateway embedded in server 1 (one request at a time, so that the event
// loop reads and writes server 1's keys in place) while server 2 dies.
func TestKillServerVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	for _, tt := range []struct {
		name     string
		embedded bool
		depth    int
	}{
		{"gateway", false, 2},
		{"embedded gateway", true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			killVerify(t, localcluster.Options{Servers: 3, EmbeddedGateway: tt.embedded}, tt.depth)
		})
	}
}

func killVerify(t *testing.T, opt localcluster.Options, depth int) {
	c := localcluster.StartT(t, opt)
	var ops atomic.Uint64
	type out struct {
		res *benchload.Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := benchload.Run(context.Background(), benchload.Config{
			Addr: c.Gateway(), Conns: 8, Pipeline: depth, GetRatio: 0.7, ValueSize: 256, Keys: 2000,
			MultiGet: 1, Duration: 12 * time.Second, Preload: true, Verify: true,
			Progress: func(_ time.Duration, n, _ uint64) { ops.Store(n) },
		})
		done <- out{res, err}
	}()
	// Kill once the measurement has run a while.
	deadline := time.Now().Add(30 * time.Second)
	for ops.Load() < 2000 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling a counter with a deadline
	}
	if err := c.KillServer(1); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	r := o.res
	t.Logf("ops %d (%.0f/s) gets %d sets %d hits %d misses %d errors %d reconnects %d wrong %d preloaded %d",
		r.Ops, r.OpsPerSec(), r.Gets, r.Sets, r.Hits, r.Misses, r.Errors, r.Reconnects, r.Wrong, r.Preloaded)
	if r.Wrong != 0 {
		t.Fatalf("%d wrong values: %q", r.Wrong, r.WrongSamples)
	}
	if r.Preloaded != 2000 || r.PreloadErrors != 0 || r.Ops < 2000 {
		t.Fatalf("preloaded %d (errors %d), ops %d", r.Preloaded, r.PreloadErrors, r.Ops)
	}
}

// TestClusterModes runs short verifying loads in every protocol mode against
// a real gateway: text and binary, plain and multi-get, pipelined.
func TestClusterModes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := localcluster.StartT(t, localcluster.Options{Servers: 2, GatewayBinaryPort: -1})
	tests := []struct {
		name   string
		binary bool
		mget   int
		depth  int
	}{
		{"text", false, 1, 1},
		{"text mget pipelined", false, 4, 4},
		{"binary", true, 1, 1},
		{"binary mget pipelined", true, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := c.Gateway()
			if tt.binary {
				addr = c.GatewayBinary()
			}
			r, err := benchload.Run(context.Background(), benchload.Config{
				Addr: addr, Binary: tt.binary, Conns: 4, Pipeline: tt.depth, GetRatio: 0.6, ValueSize: 100,
				Keys: 300, MultiGet: tt.mget, Ops: 3000, Preload: true, Verify: true,
				KeyPrefix: strings.ReplaceAll(tt.name, " ", "-") + ":",
			})
			if err != nil {
				t.Fatal(err)
			}
			if r.Ops != 3000 || r.Errors != 0 || r.Wrong != 0 || r.Misses != 0 || r.Preloaded != 300 {
				t.Fatalf("ops %d errors %d wrong %d %q misses %d preloaded %d",
					r.Ops, r.Errors, r.Wrong, r.WrongSamples, r.Misses, r.Preloaded)
			}
		})
	}
}
