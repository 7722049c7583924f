// Command kumo-bench is a memslap/memtier-style load generator for any
// memcached server (memcached itself, a kumo-gateway, kumofs).
//
//	kumo-bench [-s ADDR] [-c CONNS] [-P DEPTH] [-ratio SETS:GETS | -gets F]
//	           [-d BYTES] [-keys N] [-dist uniform|zipf] [-t 10s | -n OPS]
//	           [-preload] [-mget N] [-binary] [-verify] [-json]
//
// Every connection runs a closed loop: it writes -P requests, then reads
// their replies. At the end kumo-bench prints requests per second, the hit
// rate, errors and latency percentiles (p50/p90/p99/p99.9), as text or as one
// JSON object with -json; on a terminal it shows progress once a second.
//
// With -verify every value is derived from its key and a per-key version and
// every get is checked against what a correct store may answer, so the run
// doubles as a correctness load (see package benchload). kumo-bench exits 1
// when any request failed or any value was wrong.
//
// kumo-bench only loads 127.0.0.0/8 (and ::1) unless -allow-remote is given.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"kumofs/internal/benchload"
	"kumofs/internal/cli"
)

const usage = `usage: kumo-bench [-s ADDR] [-c CONNS] [-P DEPTH] [-ratio SETS:GETS | -gets F] [-d BYTES]
                  [-keys N] [-dist uniform|zipf] [-t DURATION | -n OPS] [-preload] [-mget N]
                  [-binary] [-verify] [-json]
Closed-loop memcached load: prints ops/s, hit rate, errors and latency percentiles.`

// errRemote means the target is not on the loopback network.
var errRemote = errors.New("kumo-bench: refusing a non-loopback target (use -allow-remote for a test namespace)")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, isTerminal(os.Stderr))
	stop()
	os.Exit(code)
}

// options is the parsed command line.
type options struct {
	cfg         benchload.Config
	jsonOut     bool
	allowRemote bool
	quiet       bool
}

// parse parses args; code >= 0 means exit with it.
func parse(args []string, stdout, stderr io.Writer) (o options, code int) {
	fs := cli.New("kumo-bench", usage)
	fs.Stdout, fs.Stderr = stdout, stderr
	code = -1
	fs.ExitFunc = func(c int) { code = c }
	c := &o.cfg
	c.GetRatio = 0.9
	var dist string
	var zipfS string
	var dur string
	var ops int
	fs.String(&c.Addr, "-s", "--server", "127.0.0.1:11211", "memcached server address (host:port)")
	fs.Int(&c.Conns, "-c", "--connections", 16, "connections, each a closed loop")
	fs.Int(&c.Pipeline, "-P", "--pipeline", 1, "requests in flight per connection")
	fs.Func("-ratio", "--ratio", "SETS:GETS", "1:9", "set:get request ratio", func(s string) error {
		r, err := parseRatio(s)
		c.GetRatio = r
		return err
	})
	fs.Func("-gets", "--gets", "F", "", "fraction of requests that are gets (0..1), instead of -ratio", func(s string) error {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f > 1 || math.IsNaN(f) {
			return errors.New("want a number within 0..1")
		}
		c.GetRatio = f
		return nil
	})
	fs.Int(&c.ValueSize, "-d", "--data-size", 1024, "value size in bytes")
	fs.Int(&c.Keys, "-keys", "--keys", 10000, "number of distinct keys")
	fs.String(&dist, "-dist", "--distribution", "uniform", "key popularity: uniform or zipf")
	fs.String(&zipfS, "-zipf-s", "--zipf-exponent", "1.01", "exponent of -dist zipf (> 1)")
	fs.String(&dur, "-t", "--time", "", "duration (10s, 1m, or seconds); default 10s without -n")
	fs.Int(&ops, "-n", "--requests", 0, "total requests instead of a duration")
	fs.Bool(&c.Preload, "-preload", "--preload", "set every key once before measuring")
	fs.Int(&c.MultiGet, "-mget", "--multi-get", 1, "keys per get request")
	fs.Bool(&c.Binary, "-binary", "--binary", "binary protocol instead of text")
	fs.Bool(&c.Verify, "-verify", "--verify", "derive every value from key and version and check every get")
	fs.Bool(&o.jsonOut, "-json", "--json", "print the result as one JSON object")
	fs.Bool(&o.allowRemote, "-allow-remote", "--allow-remote", "allow a target outside 127.0.0.0/8")
	fs.Bool(&o.quiet, "-q", "--quiet", "no progress line")
	fs.String(&c.KeyPrefix, "-prefix", "--key-prefix", benchload.DefaultKeyPrefix, "key prefix")
	var seed uint
	fs.Uint(&seed, "-seed", "--seed", 0, "random seed (0 = random)")
	fs.Exit(fs.Parse(args))
	if code >= 0 {
		return o, code
	}
	c.Seed = uint64(seed)
	fail := func(format string, args ...any) (options, int) {
		fs.Fail(format, args...)
		return o, max(code, 1)
	}
	switch dist {
	case "uniform":
	case "zipf":
		s, err := strconv.ParseFloat(zipfS, 64)
		if err != nil || !(s > 1) {
			return fail("-zipf-s: want a number > 1, got %q", zipfS)
		}
		c.Zipf = s
	default:
		return fail("-dist: want uniform or zipf, got %q", dist)
	}
	if ops < 0 {
		return fail("-n: must not be negative")
	}
	c.Ops = int64(ops)
	if dur != "" {
		d, err := parseDuration(dur)
		if err != nil {
			return fail("-t: %v", err)
		}
		c.Duration = d
	} else if ops == 0 {
		c.Duration = 10 * time.Second
	}
	return o, -1
}

// parseRatio parses memtier's SETS:GETS into the fraction of gets.
func parseRatio(s string) (float64, error) {
	a, b, ok := strings.Cut(s, ":")
	sets, err1 := strconv.ParseUint(a, 10, 32)
	gets, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil || sets+gets == 0 {
		return 0, errors.New("want SETS:GETS, two non-negative integers, not both 0")
	}
	return float64(gets) / float64(sets+gets), nil
}

// parseDuration accepts a Go duration (10s, 1m30s) or a number of seconds.
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > 1e6 || math.IsNaN(f) {
			return 0, errors.New("out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration like 10s, got %q", s)
	}
	return d, nil
}

// checkLoopback refuses addr unless its host is (or resolves only to)
// loopback addresses.
func checkLoopback(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("kumo-bench: bad address %q: %w", addr, err)
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		as, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Errorf("kumo-bench: resolve %q: %w", host, err)
		}
		for _, a := range as {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s", errRemote, ip)
		}
	}
	if len(ips) == 0 {
		return fmt.Errorf("%w: %s resolves to nothing", errRemote, host)
	}
	return nil
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, tty bool) int {
	o, code := parse(args, stdout, stderr)
	if code >= 0 {
		return code
	}
	if !o.allowRemote {
		if err := checkLoopback(ctx, o.cfg.Addr); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if tty && !o.quiet {
		o.cfg.Progress = func(el time.Duration, ops, errs uint64) {
			fmt.Fprintf(stderr, "\r%5.0fs %10.0f ops/s %12d ops %8d errors", el.Seconds(),
				float64(ops)/el.Seconds(), ops, errs)
		}
	}
	res, err := benchload.Run(ctx, o.cfg)
	if o.cfg.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		if errors.Is(err, benchload.ErrConfig) {
			// A bad combination of flags: reported like a bad flag.
			fmt.Fprintln(stdout, usage)
			fmt.Fprintln(stderr, "error:", strings.TrimPrefix(err.Error(), "benchload: bad config: "))
			return 1
		}
		fmt.Fprintln(stderr, "kumo-bench:", strings.TrimPrefix(err.Error(), "benchload: "))
		return 1
	}
	if o.jsonOut {
		writeJSON(stdout, &o.cfg, res)
	} else {
		writeText(stdout, &o.cfg, res)
	}
	if res.Errors > 0 || res.Wrong > 0 || res.PreloadErrors > 0 {
		return 1
	}
	return 0
}

// Report is the JSON form of a result (-json). Latencies are microseconds.
type Report struct {
	Server        string   `json:"server"`
	Protocol      string   `json:"protocol"`
	Conns         int      `json:"connections"`
	Pipeline      int      `json:"pipeline"`
	GetRatio      float64  `json:"get_ratio"`
	ValueSize     int      `json:"value_size"`
	Keys          int      `json:"keys"`
	Zipf          float64  `json:"zipf,omitempty"`
	MultiGet      int      `json:"multi_get"`
	Verify        bool     `json:"verify"`
	Seconds       float64  `json:"seconds"`
	Ops           uint64   `json:"ops"`
	OpsPerSec     float64  `json:"ops_per_sec"`
	Gets          uint64   `json:"gets"`
	Sets          uint64   `json:"sets"`
	Hits          uint64   `json:"hits"`
	Misses        uint64   `json:"misses"`
	HitRate       float64  `json:"hit_rate"`
	Errors        uint64   `json:"errors"`
	Wrong         uint64   `json:"wrong"`
	WrongSamples  []string `json:"wrong_samples,omitempty"`
	Reconnects    uint64   `json:"reconnects"`
	Preloaded     uint64   `json:"preloaded"`
	PreloadErrors uint64   `json:"preload_errors"`
	P50           float64  `json:"p50_us"`
	P90           float64  `json:"p90_us"`
	P99           float64  `json:"p99_us"`
	P999          float64  `json:"p99_9_us"`
	Max           float64  `json:"max_us"`
}

func us(d time.Duration) float64 { return math.Round(float64(d)/100) / 10 }

// report builds the Report of res.
func report(c *benchload.Config, res *benchload.Result) Report {
	proto := "text"
	if c.Binary {
		proto = "binary"
	}
	h := &res.Latency
	return Report{
		Server: c.Addr, Protocol: proto, Conns: c.Conns, Pipeline: c.Pipeline,
		GetRatio: c.GetRatio, ValueSize: c.ValueSize, Keys: c.Keys, Zipf: c.Zipf,
		MultiGet: c.MultiGet, Verify: c.Verify,
		Seconds: math.Round(res.Elapsed.Seconds()*1000) / 1000,
		Ops:     res.Ops, OpsPerSec: math.Round(res.OpsPerSec()),
		Gets: res.Gets, Sets: res.Sets, Hits: res.Hits, Misses: res.Misses,
		HitRate: math.Round(res.HitRate()*1e4) / 1e4,
		Errors:  res.Errors, Wrong: res.Wrong, WrongSamples: res.WrongSamples,
		Reconnects: res.Reconnects, Preloaded: res.Preloaded, PreloadErrors: res.PreloadErrors,
		P50: us(h.Quantile(0.5)), P90: us(h.Quantile(0.9)), P99: us(h.Quantile(0.99)),
		P999: us(h.Quantile(0.999)), Max: us(h.Max()),
	}
}

func writeJSON(w io.Writer, c *benchload.Config, res *benchload.Result) {
	b, _ := json.Marshal(report(c, res))
	w.Write(append(b, '\n'))
}

func writeText(w io.Writer, c *benchload.Config, res *benchload.Result) {
	r := report(c, res)
	dist := "uniform"
	if r.Zipf > 0 {
		dist = "zipf " + strconv.FormatFloat(r.Zipf, 'g', -1, 64)
	}
	fmt.Fprintf(w, "server     %s %s, %d conns, pipeline %d, %.0f%% gets, %d B values, %d keys %s, mget %d\n",
		r.Server, r.Protocol, r.Conns, r.Pipeline, r.GetRatio*100, r.ValueSize, r.Keys, dist, r.MultiGet)
	if c.Preload {
		fmt.Fprintf(w, "preload    %d keys set, %d errors\n", r.Preloaded, r.PreloadErrors)
	}
	fmt.Fprintf(w, "ops        %d in %.2fs = %.0f ops/s\n", r.Ops, r.Seconds, r.OpsPerSec)
	fmt.Fprintf(w, "requests   %d gets, %d sets\n", r.Gets, r.Sets)
	fmt.Fprintf(w, "keys       %d hits, %d misses, hit rate %.2f%%\n", r.Hits, r.Misses, r.HitRate*100)
	fmt.Fprintf(w, "errors     %d (reconnects %d)\n", r.Errors, r.Reconnects)
	if c.Verify {
		fmt.Fprintf(w, "wrong      %d\n", r.Wrong)
		for _, s := range r.WrongSamples {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	fmt.Fprintf(w, "latency    p50 %.1fus  p90 %.1fus  p99 %.1fus  p99.9 %.1fus  max %.1fus\n",
		r.P50, r.P90, r.P99, r.P999, r.Max)
}
