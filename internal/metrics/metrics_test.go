package metrics

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sample builds a registry with one of each kind and fixed values.
func sample() *Registry {
	r := NewRegistry()
	c := r.NewCounter("kumo_test_counter_total", "A counter.")
	c.Add(41)
	c.Inc()
	g := r.NewGauge("kumo_test_gauge", "A gauge with a \\ and a\nnewline.")
	g.Set(10)
	g.Dec()
	r.NewGaugeFunc("kumo_test_ratio", "A func gauge.", func() float64 { return 0.375 })
	r.NewCounterFunc("kumo_test_func_total", "A func counter.", func() float64 { return 7 })
	req := NewRequests(r, []string{"set", "get"}, []string{"ok", "miss"})
	req.Total.With("get", "ok").Add(3)
	req.Total.With("set", "ok").Inc()
	req.Latency.With("get").Observe(30 * time.Microsecond)
	req.Latency.With("get").Observe(2 * time.Millisecond)
	req.Latency.With("get").Observe(20 * time.Second)
	h := r.NewHistogram("kumo_test_seconds", "A histogram.", []float64{0.001, 0.5})
	h.Observe(time.Millisecond) // le is inclusive
	h.Observe(-time.Second)     // counts as 0
	h.Observe(time.Second)
	r.NewGaugeVecFunc("kumo_test_peers", "A labelled func gauge.", []string{"peer"}, func(emit func([]string, float64)) {
		emit([]string{`b"q`}, 2)
		emit([]string{"a"}, 1)
	})
	return r
}

func TestWriteTextGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := sample().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "sample.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("WriteText =\n%s\nwant\n%s", buf.Bytes(), want)
	}
	// Stable: a second scrape of unchanged values is identical.
	var again bytes.Buffer
	sample().WriteText(&again)
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Error("output not stable")
	}
}

func TestParseTextRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	sample().WriteText(&buf)
	for name, rd := range map[string]func() *bytes.Reader{
		"whole": func() *bytes.Reader { return bytes.NewReader(buf.Bytes()) },
	} {
		for _, wrap := range []struct {
			name string
			f    func(*bytes.Reader) interface{ Read([]byte) (int, error) }
		}{
			{"plain", func(r *bytes.Reader) interface{ Read([]byte) (int, error) } { return r }},
			{"onebyte", func(r *bytes.Reader) interface{ Read([]byte) (int, error) } { return iotest.OneByteReader(r) }},
			{"half", func(r *bytes.Reader) interface{ Read([]byte) (int, error) } { return iotest.HalfReader(r) }},
		} {
			t.Run(name+"/"+wrap.name, func(t *testing.T) {
				m, err := ParseText(wrap.f(rd()))
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]float64{
					"kumo_test_counter_total":                                     42,
					"kumo_test_gauge":                                             9,
					"kumo_test_ratio":                                             0.375,
					"kumo_test_func_total":                                        7,
					`kumo_requests_total{cmd="get",result="ok"}`:                  3,
					`kumo_requests_total{cmd="get",result="miss"}`:                0,
					`kumo_requests_total{cmd="set",result="ok"}`:                  1,
					`kumo_requests_total{cmd="set",result="miss"}`:                0,
					`kumo_request_duration_seconds_bucket{cmd="get",le="5e-05"}`:  1,
					`kumo_request_duration_seconds_bucket{cmd="get",le="0.0025"}`: 2,
					`kumo_request_duration_seconds_bucket{cmd="get",le="10"}`:     2,
					`kumo_request_duration_seconds_bucket{cmd="get",le="+Inf"}`:   3,
					`kumo_request_duration_seconds_count{cmd="get"}`:              3,
					`kumo_request_duration_seconds_sum{cmd="get"}`:                20.00203,
					`kumo_request_duration_seconds_count{cmd="set"}`:              0,
					`kumo_test_seconds_bucket{le="0.001"}`:                        2,
					`kumo_test_seconds_bucket{le="0.5"}`:                          2,
					`kumo_test_seconds_bucket{le="+Inf"}`:                         3,
					`kumo_test_seconds_sum`:                                       1.001,
					`kumo_test_seconds_count`:                                     3,
					`kumo_test_peers{peer="a"}`:                                   1,
					`kumo_test_peers{peer="b\"q"}`:                                2,
				}
				for k, v := range want {
					got, ok := m[k]
					if !ok {
						t.Errorf("missing %s", k)
					} else if math.Abs(got-v) > 1e-9 {
						t.Errorf("%s = %v, want %v", k, got, v)
					}
				}
				// 2 cmds × 2 results + 2 × (16 buckets + +Inf + sum + count)
				// + 4 plain + 3 histogram buckets + sum + count + 2 peers.
				if n := 4 + 2*19 + 4 + 5 + 2; len(m) != n {
					t.Errorf("%d series, want %d", len(m), n)
				}
			})
		}
	}
}

func TestParseTextErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"x 1\nx 2\n", "duplicate series"},
		{"1x 1\n", "bad metric name"},
		{"x\n", "want a value"},
		{"x 1 2 3\n", "want a value"},
		{"x abc\n", "bad value"},
		{"x 1 notatime\n", "bad timestamp"},
		{`x{a="1" 1`, "want , or }"},
		{`x{a=1} 1`, "not quoted"},
		{`x{a="1} 1`, "unterminated"},
		{`x{a="\q"} 1`, "bad escape"},
		{`x{__a="1"} 1`, "bad label name"},
		{`x{a} 1`, "without ="},
		{`x{a="1",a="2"} 1`, "duplicate label"},
	} {
		_, err := ParseText(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseText(%q) = %v, want error containing %q", tc.in, err, tc.want)
		}
		if tc.want == "duplicate series" {
			if !errors.Is(err, ErrDuplicate) {
				t.Errorf("%q: %v is not ErrDuplicate", tc.in, err)
			}
		} else if !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v is not ErrSyntax", tc.in, err)
		}
	}
	// Accepted: comments, blanks, timestamps, spacing, label order.
	m, err := ParseText(strings.NewReader("# HELP x y\n\n  x{ b=\"2\" , a=\"1\" , } 1.5 1700000000000\ny +Inf\nz NaN\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m[`x{a="1",b="2"}`] != 1.5 || !math.IsInf(m["y"], 1) || !math.IsNaN(m["z"]) {
		t.Errorf("got %v", m)
	}
}

func TestRegistrationPanics(t *testing.T) {
	for name, f := range map[string]func(r *Registry){
		"bad name":      func(r *Registry) { r.NewCounter("1abc", "") },
		"duplicate":     func(r *Registry) { r.NewCounter("a", ""); r.NewGauge("a", "") },
		"bad label":     func(r *Registry) { r.NewCounterVec("a", "", []string{"a-b"}, nil) },
		"dup label":     func(r *Registry) { r.NewCounterVec("a", "", []string{"x", "x"}, nil) },
		"arity":         func(r *Registry) { r.NewCounterVec("a", "", []string{"x"}, [][]string{{"1", "2"}}) },
		"dup values":    func(r *Registry) { r.NewCounterVec("a", "", []string{"x"}, [][]string{{"1"}, {"1"}}) },
		"le label":      func(r *Registry) { r.NewHistogramVec("a", "", []string{"le"}, nil, nil) },
		"bounds order":  func(r *Registry) { r.NewHistogram("a", "", []float64{1, 1}) },
		"unknown child": func(r *Registry) { r.NewCounterVec("a", "", []string{"x"}, [][]string{{"1"}}).With("2") },
		"unknown help":  func(*Registry) { Help("kumo_nope") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(NewRegistry())
		})
	}
}

func TestCatalog(t *testing.T) {
	names := make([]string, len(Catalog))
	for i, d := range Catalog {
		names[i] = d.Name
		if !validName(d.Name) || d.Help == "" || d.Roles == "" {
			t.Errorf("bad entry %+v", d)
		}
		switch d.Type {
		case "counter", "gauge", "histogram":
		default:
			t.Errorf("%s: type %q", d.Name, d.Type)
		}
		if d.Type == "counter" && !strings.HasSuffix(d.Name, "_total") {
			t.Errorf("%s: a counter's name ends in _total", d.Name)
		}
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("Catalog not sorted: %v", names)
	}
}

// TestOperationsDoc checks that docs/operations.md documents every metric.
func TestOperationsDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range Catalog {
		if !bytes.Contains(doc, []byte("`"+d.Name+"`")) {
			t.Errorf("docs/operations.md does not document %s", d.Name)
		}
	}
}

func TestRegisterProcess(t *testing.T) {
	r := NewRegistry()
	RegisterProcess(r, "server", "0.1.0", time.Unix(1700000000, 500000000))
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	m, err := ParseText(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if m[StartTime] != 1700000000.5 {
		t.Errorf("start time %v", m[StartTime])
	}
	found := false
	for k, v := range m {
		if strings.HasPrefix(k, BuildInfo+`{goversion="go`) && strings.Contains(k, `role="server",version="0.1.0"}`) && v == 1 {
			found = true
		}
	}
	if !found || m[Goroutines] < 1 || m[HeapBytes] <= 0 {
		t.Errorf("got %v", m)
	}
	if _, ok := m[GCPauseTotal]; !ok {
		t.Error("no gc pause")
	}
}

func TestConcurrentScrape(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("c_total", "")
	h := r.NewHistogram("h", "", nil)
	const workers, n = 4, 2000
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < n; j++ {
				c.Inc()
				h.Observe(time.Duration(j) * time.Microsecond)
			}
		}()
	}
	for i := 0; i < 20; i++ {
		var buf bytes.Buffer
		r.WriteText(&buf)
		m, err := ParseText(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if m["h_count"] != m[`h_bucket{le="+Inf"}`] {
			t.Fatalf("count %v != +Inf bucket %v", m["h_count"], m[`h_bucket{le="+Inf"}`])
		}
		if m[`h_bucket{le="0.001"}`] > m[`h_bucket{le="0.0025"}`] {
			t.Fatal("buckets not cumulative")
		}
	}
	wg.Wait()
	if c.Value() != workers*n || h.Count() != workers*n {
		t.Errorf("counter %d, histogram %d", c.Value(), h.Count())
	}
}

func TestCross(t *testing.T) {
	got := Cross([]string{"a", "b"}, []string{"1", "2", "3"})
	want := "a1 a2 a3 b1 b2 b3"
	var s []string
	for _, t := range got {
		s = append(s, strings.Join(t, ""))
	}
	if strings.Join(s, " ") != want {
		t.Errorf("Cross = %v", got)
	}
}

func TestHotPathAllocs(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounter("c_total", "")
	h := r.NewHistogram("h", "", nil)
	g := r.NewGauge("g", "")
	v := NewRequests(r, []string{"get"}, []string{"hit"})
	hit := v.Total.With("get", "hit")
	if n := testing.AllocsPerRun(100, func() {
		c.Inc()
		hit.Add(2)
		g.Inc()
		h.Observe(3 * time.Millisecond)
	}); n != 0 {
		t.Errorf("%v allocs per run, want 0", n)
	}
}

func BenchmarkCounterAdd(b *testing.B) {
	c := NewRegistry().NewCounter("c_total", "")
	b.ReportAllocs()
	for b.Loop() {
		c.Add(1)
	}
}

func BenchmarkCounterAddParallel(b *testing.B) {
	c := NewRegistry().NewCounter("c_total", "")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(1)
		}
	})
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := NewRegistry().NewHistogram("h", "", nil)
	b.ReportAllocs()
	d := 700 * time.Microsecond
	for b.Loop() {
		h.Observe(d)
	}
}

func BenchmarkHistogramObserveParallel(b *testing.B) {
	h := NewRegistry().NewHistogram("h", "", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Observe(700 * time.Microsecond)
		}
	})
}

func BenchmarkWriteText(b *testing.B) {
	r := sample()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		r.WriteText(&buf)
	}
}

func TestRegisterStore(t *testing.T) {
	r := NewRegistry()
	calls := 0
	RegisterStore(r, func() StoreFigures {
		calls++
		return StoreFigures{Records: 10, Buckets: 1 << 20, Load: 0.25, LiveBytes: 800, DeadBytes: 200, FileBytes: 9502720}
	})
	var buf bytes.Buffer
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	m, err := ParseText(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{Items: 10, StoreBuckets: 1 << 20, StoreLoad: 0.25, StoreLiveBytes: 800, StoreDeadBytes: 200, StoreFileBytes: 9502720}
	if len(m) != len(want) {
		t.Errorf("got %v", m)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if calls != 1 {
		t.Errorf("stats called %d times in one scrape, want 1", calls)
	}
}

func TestForRoleMissing(t *testing.T) {
	srv := ForRole("server")
	for _, want := range []string{BuildInfo, Items, RequestsTotal, RequestDuration, StoreLoad, ReplacePhase, RPCErrorsTotal} {
		if !slices.Contains(srv, want) {
			t.Errorf("ForRole(server) lacks %s", want)
		}
	}
	if slices.Contains(srv, Servers) || slices.Contains(ForRole("gateway"), Items) {
		t.Error("ForRole includes another role's metric")
	}
	if !slices.Contains(ForRole("manager"), Goroutines) {
		t.Error(`"all" metrics missing for the manager`)
	}

	var buf bytes.Buffer
	sample().WriteText(&buf)
	m, err := ParseText(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got := Missing(m, []string{RequestsTotal, RequestDuration, "kumo_test_gauge", "kumo_test_seconds", Items, "kumo_test"})
	if !slices.Equal(got, []string{Items, "kumo_test"}) {
		t.Errorf("Missing = %v", got)
	}
}

func TestHistogramBoundInclusive(t *testing.T) {
	// A bound is inclusive: an observation of exactly the bound counts in
	// its bucket, whatever rounding bound*1e9 does in float64.
	h := NewRegistry().NewHistogram("h", "", []float64{0.3, 0.7})
	h.Observe(300 * time.Millisecond)
	h.Observe(700 * time.Millisecond)
	h.Observe(700*time.Millisecond + 1)
	if a, b, c := h.counts[0].Load(), h.counts[1].Load(), h.counts[2].Load(); a != 1 || b != 1 || c != 1 {
		t.Errorf("buckets %d %d %d, want 1 1 1", a, b, c)
	}
	if h.Count() != 3 || h.Sum() != 1700*time.Millisecond+1 {
		t.Errorf("count %d sum %v", h.Count(), h.Sum())
	}
}

// Ensure that CounterSum adds plain counters and every child of counter
// families, and skips names that are missing or not counters.
func TestCounterSum(t *testing.T) {
	r := NewRegistry()
	v := r.NewCounterVec("a_total", "a", []string{"x"}, [][]string{{"1"}, {"2"}})
	v.With("1").Add(3)
	v.With("2").Add(4)
	r.NewCounter("b_total", "b").Add(5)
	r.NewGauge("c", "c").Set(100)
	if got := r.CounterSum("a_total", "b_total", "c", "missing"); got != 12 {
		t.Fatalf("CounterSum = %d, want 12", got)
	}
	if got := r.CounterSum(); got != 0 {
		t.Fatalf("CounterSum() = %d, want 0", got)
	}
}
