// Package metrics is kumo's tiny metrics registry: counters, gauges,
// labelled counter families and fixed-bucket histograms, written out in the
// Prometheus text exposition format 0.0.4. It uses the standard library
// only.
//
// The hot path is lock-free and allocation-free: a Counter is one atomic
// add, a Histogram.Observe a few atomic adds. Labelled families have a label
// set fixed at registration and their children are created up front, so a
// caller looks a child up once (v.With("get", "hit")) and keeps the
// *Counter:
//
//	reg := metrics.NewRegistry()
//	req := reg.NewCounterVec("kumo_requests_total", "Requests by command and result.",
//		[]string{"cmd", "result"}, [][]string{{"get", "hit"}, {"get", "miss"}})
//	getHit := req.With("get", "hit")
//	...
//	getHit.Inc()
//
// Registration takes a lock and panics on programmer errors (a bad or
// duplicate name, a wrong number of label values); it is meant for start-up.
// Scraping (WriteText) reads the atomics without stopping writers, so a
// scrape is a consistent snapshot of each value but not across values.
package metrics

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Counter is a monotonically increasing integer. The zero value is ready to
// use; it is safe for concurrent use.
type Counter struct {
	v atomic.Uint64
}

// Inc adds 1.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Gauge is a value that goes up and down, stored as an int64. The zero
// value is ready to use; it is safe for concurrent use.
type Gauge struct {
	v atomic.Int64
}

// Set sets the gauge to n.
func (g *Gauge) Set(n int64) { g.v.Store(n) }

// Add adds n (which may be negative).
func (g *Gauge) Add(n int64) { g.v.Add(n) }

// Inc adds 1.
func (g *Gauge) Inc() { g.v.Add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.v.Add(-1) }

// Value returns the current value.
func (g *Gauge) Value() int64 { return g.v.Load() }

// LatencyBuckets are the default histogram upper bounds, in seconds: 50 µs
// to 10 s, roughly ×2.5 apart. They suit request latencies from a cached
// local get to a replicated write that waits for a slow replica.
var LatencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
}

// Histogram counts observations into fixed buckets. Observe is two atomic
// adds (its bucket and the sum) and does not allocate; the count is the sum
// of the buckets, computed when read. The sum is kept in nanoseconds, so it
// is exact for durations; it is written out in seconds.
type Histogram struct {
	bounds []float64       // upper bounds in seconds, ascending
	nanos  []int64         // bounds in nanoseconds, for Observe
	counts []atomic.Uint64 // one per bound plus +Inf; not cumulative
	sumNs  atomic.Int64
}

func newHistogram(bounds []float64) *Histogram {
	if len(bounds) == 0 {
		bounds = LatencyBuckets
	}
	h := &Histogram{
		bounds: append([]float64(nil), bounds...),
		nanos:  make([]int64, len(bounds)),
		counts: make([]atomic.Uint64, len(bounds)+1),
	}
	for i, b := range h.bounds {
		if math.IsNaN(b) || math.IsInf(b, 0) || (i > 0 && b <= h.bounds[i-1]) {
			panic("metrics: histogram bounds must be finite and strictly ascending")
		}
		h.nanos[i] = int64(math.Round(b * 1e9))
	}
	return h
}

// Observe records one duration. Negative durations count as 0.
func (h *Histogram) Observe(d time.Duration) {
	ns := int64(d)
	if ns < 0 {
		ns = 0
	}
	// Linear scan: with ~16 bounds it beats a binary search in practice and
	// most observations land in the first few buckets.
	i := 0
	for i < len(h.nanos) && ns > h.nanos[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(ns)
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Sum returns the sum of the observations.
func (h *Histogram) Sum() time.Duration { return time.Duration(h.sumNs.Load()) }

// CounterVec is a family of counters with a fixed label set, one child per
// label-value tuple given at registration.
type CounterVec struct {
	labels   []string
	children map[string]*Counter // key: label values joined by \xff; read-only after registration
	order    [][]string          // label values in registration order
}

// With returns the child for the label values, in the order of the labels
// given at registration. It panics if that tuple was not registered: call
// it once at start-up and keep the *Counter for the hot path.
func (v *CounterVec) With(values ...string) *Counter {
	c, ok := v.children[joinKey(values)]
	if !ok {
		panic("metrics: unregistered label values")
	}
	return c
}

// Sum returns the sum of the children's counts.
func (v *CounterVec) Sum() uint64 {
	var n uint64
	for _, c := range v.children {
		n += c.Value()
	}
	return n
}

// HistogramVec is a family of histograms with a fixed label set.
type HistogramVec struct {
	labels   []string
	children map[string]*Histogram
	order    [][]string
}

// With returns the child for the label values; see CounterVec.With.
func (v *HistogramVec) With(values ...string) *Histogram {
	h, ok := v.children[joinKey(values)]
	if !ok {
		panic("metrics: unregistered label values")
	}
	return h
}

func joinKey(values []string) string {
	n := 0
	for _, s := range values {
		n += len(s) + 1
	}
	b := make([]byte, 0, n)
	for _, s := range values {
		b = append(b, s...)
		b = append(b, 0xff)
	}
	return string(b)
}

// kind is a metric family's Prometheus type.
type kind uint8

const (
	kindCounter kind = iota
	kindGauge
	kindHistogram
)

func (k kind) String() string {
	switch k {
	case kindCounter:
		return "counter"
	case kindGauge:
		return "gauge"
	}
	return "histogram"
}

// family is one registered metric name with its HELP, TYPE and samples.
type family struct {
	name string
	help string
	kind kind

	counter *Counter
	gauge   *Gauge
	fn      func() float64
	hist    *Histogram
	cvec    *CounterVec
	hvec    *HistogramVec
	gfn     func(emit func(labelValues []string, v float64)) // labelled gauge func
	glabels []string
}

// Registry holds metric families and writes them out. The zero value is
// not usable; call NewRegistry.
type Registry struct {
	mu       sync.Mutex // protects families; registration and WriteText take it
	families map[string]*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{families: make(map[string]*family)} }

// CounterSum returns the sum of the counters registered under names, with
// every label value of a family; a name that is not registered, or not a
// counter, adds nothing. It is safe to call while the counters change.
func (r *Registry) CounterSum(names ...string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n uint64
	for _, name := range names {
		f := r.families[name]
		switch {
		case f == nil:
		case f.counter != nil:
			n += f.counter.Value()
		case f.cvec != nil:
			n += f.cvec.Sum()
		}
	}
	return n
}

func (r *Registry) add(f *family) {
	if !validName(f.name) {
		panic("metrics: invalid metric name " + f.name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.families[f.name]; dup {
		panic("metrics: duplicate metric " + f.name)
	}
	r.families[f.name] = f
}

// NewCounter registers and returns a counter.
func (r *Registry) NewCounter(name, help string) *Counter {
	c := new(Counter)
	r.add(&family{name: name, help: help, kind: kindCounter, counter: c})
	return c
}

// NewCounterFunc registers a counter whose value fn returns at scrape time
// (for a count kept elsewhere, e.g. a store's statistics). fn must be safe
// for concurrent use and must not call back into the registry.
func (r *Registry) NewCounterFunc(name, help string, fn func() float64) {
	r.add(&family{name: name, help: help, kind: kindCounter, fn: fn})
}

// NewGauge registers and returns a gauge.
func (r *Registry) NewGauge(name, help string) *Gauge {
	g := new(Gauge)
	r.add(&family{name: name, help: help, kind: kindGauge, gauge: g})
	return g
}

// NewGaugeFunc registers a gauge whose value fn returns at scrape time. fn
// must be safe for concurrent use and must not call back into the registry.
func (r *Registry) NewGaugeFunc(name, help string, fn func() float64) {
	r.add(&family{name: name, help: help, kind: kindGauge, fn: fn})
}

// NewGaugeVecFunc registers a labelled gauge family whose samples are
// produced at scrape time: fn calls emit once per sample with one value per
// label (for a set that changes, e.g. one sample per peer server). Samples
// are written sorted by label values; duplicates are written as given.
func (r *Registry) NewGaugeVecFunc(name, help string, labels []string, fn func(emit func(labelValues []string, v float64))) {
	checkLabels(labels)
	r.add(&family{name: name, help: help, kind: kindGauge, gfn: fn, glabels: append([]string(nil), labels...)})
}

// NewCounterVecFunc is NewGaugeVecFunc for counters: a labelled counter
// family whose samples fn produces at scrape time from counts kept
// elsewhere.
func (r *Registry) NewCounterVecFunc(name, help string, labels []string, fn func(emit func(labelValues []string, v float64))) {
	checkLabels(labels)
	r.add(&family{name: name, help: help, kind: kindCounter, gfn: fn, glabels: append([]string(nil), labels...)})
}

// NewHistogram registers and returns a histogram with the given upper
// bounds in seconds (LatencyBuckets when nil).
func (r *Registry) NewHistogram(name, help string, bounds []float64) *Histogram {
	h := newHistogram(bounds)
	r.add(&family{name: name, help: help, kind: kindHistogram, hist: h})
	return h
}

// NewCounterVec registers a counter family with the given labels and one
// child per entry of values (each with len(labels) values).
func (r *Registry) NewCounterVec(name, help string, labels []string, values [][]string) *CounterVec {
	checkLabels(labels)
	v := &CounterVec{labels: append([]string(nil), labels...), children: make(map[string]*Counter, len(values))}
	for _, vals := range values {
		if len(vals) != len(labels) {
			panic("metrics: wrong number of label values for " + name)
		}
		k := joinKey(vals)
		if _, dup := v.children[k]; dup {
			panic("metrics: duplicate label values for " + name)
		}
		v.children[k] = new(Counter)
		v.order = append(v.order, append([]string(nil), vals...))
	}
	r.add(&family{name: name, help: help, kind: kindCounter, cvec: v})
	return v
}

// NewHistogramVec registers a histogram family with the given labels, one
// child per entry of values, all with the same bounds (LatencyBuckets when
// nil).
func (r *Registry) NewHistogramVec(name, help string, labels []string, values [][]string, bounds []float64) *HistogramVec {
	checkLabels(labels)
	for _, l := range labels {
		if l == "le" {
			panic("metrics: label le is reserved for histograms")
		}
	}
	v := &HistogramVec{labels: append([]string(nil), labels...), children: make(map[string]*Histogram, len(values))}
	for _, vals := range values {
		if len(vals) != len(labels) {
			panic("metrics: wrong number of label values for " + name)
		}
		k := joinKey(vals)
		if _, dup := v.children[k]; dup {
			panic("metrics: duplicate label values for " + name)
		}
		v.children[k] = newHistogram(bounds)
		v.order = append(v.order, append([]string(nil), vals...))
	}
	r.add(&family{name: name, help: help, kind: kindHistogram, hvec: v})
	return v
}

// Cross returns every combination of the given value lists, in order: the
// label-value tuples for NewCounterVec when each label ranges over its own
// set, e.g. Cross([]string{"get","set"}, []string{"ok","error"}).
func Cross(lists ...[]string) [][]string {
	out := [][]string{nil}
	for _, l := range lists {
		next := make([][]string, 0, len(out)*len(l))
		for _, prefix := range out {
			for _, s := range l {
				t := append(append([]string(nil), prefix...), s)
				next = append(next, t)
			}
		}
		out = next
	}
	return out
}

func checkLabels(labels []string) {
	seen := make(map[string]bool, len(labels))
	for _, l := range labels {
		if !validLabel(l) || seen[l] {
			panic("metrics: invalid or duplicate label name " + l)
		}
		seen[l] = true
	}
}

// validName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// validLabel reports whether s matches [a-zA-Z_][a-zA-Z0-9_]* and does not
// start with "__" (reserved).
func validLabel(s string) bool {
	if s == "" || (len(s) >= 2 && s[:2] == "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// sortedFamilies returns the families sorted by name. r.mu must be held.
func (r *Registry) sortedFamilies() []*family {
	fs := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		fs = append(fs, f)
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].name < fs[j].name })
	return fs
}
