// Package benchload is the engine of kumo-bench: a closed-loop load
// generator for any memcached server over the text or the binary protocol.
//
// Each of Config.Conns connections runs its own loop: it writes Pipeline
// requests (gets, multi-gets or sets, mixed by GetRatio), flushes them, then
// reads the Pipeline replies, recording each request's latency from the
// flush to its reply in a log-linear Histogram. The hot path does no
// allocation: keys and values are built in per-connection buffers and replies
// are parsed in place from a bufio.Reader.
//
// Under Config.Verify a run doubles as a correctness load; Result.Wrong
// counts replies no correct store could have given:
//
//   - every value is derived from its key, a per-key version and a random run
//     id ("RUNID:VERSION:KEY:" then letters from key and version), so a
//     corrupt byte anywhere is seen;
//   - key i is written only by connection i%Conns (sets are redirected to a
//     key the connection owns), so a key's versions are sent and
//     acknowledged in one order;
//   - a get loads the key's last acknowledged version a before it is sent
//     and the key's last sent version s after its reply arrived; the reply
//     must hold a version within [a, s]: older is stale, newer was never
//     sent, a miss after an ack is lost;
//   - a set whose outcome is unknown (error reply, or the connection broke
//     before the reply) may still land later, so its version stays
//     acceptable for the rest of the run (kept as one range per key, from
//     the lowest to the highest such version, which errs on the lenient
//     side);
//   - before this run's first ack of a key, any value (say, from an earlier
//     run) and a miss are accepted.
//
// This assumes, as memcached guarantees, that a server applies one
// connection's requests in order.
package benchload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of Run.
var (
	// ErrConfig means a Config field is out of range.
	ErrConfig = errors.New("benchload: bad config")
	// ErrDial means a connection could not be opened at the start.
	ErrDial = errors.New("benchload: dial")
)

// DefaultKeyPrefix starts every key unless Config.KeyPrefix is set.
const DefaultKeyPrefix = "kb:"

// MaxWrongSamples is how many wrong replies Result.WrongSamples describes,
// besides the first of each kind, which is always kept.
const MaxWrongSamples = 10

// Config describes one load.
type Config struct {
	Addr      string  // host:port of the server
	Binary    bool    // binary protocol instead of text
	Conns     int     // connections, each a closed loop (>= 1)
	Pipeline  int     // requests in flight per connection (>= 1)
	GetRatio  float64 // fraction of requests that are gets, 0..1
	ValueSize int     // bytes per value (>= 1)
	Keys      int     // key space size (>= 1)
	Zipf      float64 // 0: uniform popularity; > 1: zipf exponent s
	MultiGet  int     // keys per get request (1 = plain get)
	Duration  time.Duration
	Ops       int64 // total requests; 0 = until Duration (at least one must be set)
	Preload   bool  // set every key once before the measurement
	Verify    bool  // derive and check every value
	KeyPrefix string
	Seed      uint64 // random seed; 0 = from crypto/rand

	// Dial opens a connection; nil means a net.Dialer with a 5 s timeout.
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	// Progress, if set, is called about once a second during the
	// measurement from a goroutine owned by Run, with the time since the
	// measurement began and the totals so far.
	Progress func(elapsed time.Duration, ops, errs uint64)
}

// Result is what a run measured. Counts are of the measurement only (not
// the preload), except Preloaded and PreloadErrors.
type Result struct {
	Elapsed       time.Duration
	Ops           uint64 // requests done, failed ones included (Latency holds the answered ones)
	Gets, Sets    uint64 // requests by kind (a multi-get is one get)
	Hits, Misses  uint64 // keys asked by gets
	Errors        uint64 // failed requests: error replies, broken connections
	Wrong         uint64 // replies no correct store could give (Verify)
	WrongSamples  []string
	Reconnects    uint64
	Preloaded     uint64
	PreloadErrors uint64
	Latency       Histogram
}

// OpsPerSec returns requests per second.
func (r *Result) OpsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// HitRate returns hits/(hits+misses), or 0 without gets.
func (r *Result) HitRate() float64 {
	if r.Hits+r.Misses == 0 {
		return 0
	}
	return float64(r.Hits) / float64(r.Hits+r.Misses)
}

// validate checks c and fills defaults.
func (c *Config) validate() error {
	switch {
	case c.Conns < 1:
		return fmt.Errorf("%w: connections must be >= 1", ErrConfig)
	case c.Pipeline < 1:
		return fmt.Errorf("%w: pipeline depth must be >= 1", ErrConfig)
	case c.GetRatio < 0 || c.GetRatio > 1 || math.IsNaN(c.GetRatio):
		return fmt.Errorf("%w: get ratio must be within 0..1", ErrConfig)
	case c.ValueSize < 1 || c.ValueSize > 1<<20:
		return fmt.Errorf("%w: value size must be within 1..1048576", ErrConfig)
	case c.Keys < 1 || c.Keys > 1<<30:
		return fmt.Errorf("%w: keys must be within 1..1073741824", ErrConfig)
	case c.Zipf != 0 && !(c.Zipf > 1):
		return fmt.Errorf("%w: zipf exponent must be > 1", ErrConfig)
	case c.MultiGet < 1 || c.MultiGet > 1000:
		return fmt.Errorf("%w: multi-get size must be within 1..1000", ErrConfig)
	case c.Duration < 0 || c.Ops < 0:
		return fmt.Errorf("%w: negative duration or op count", ErrConfig)
	case c.Duration == 0 && c.Ops == 0:
		return fmt.Errorf("%w: need a duration or an op count", ErrConfig)
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if len(c.KeyPrefix)+keyDigits > 250 {
		return fmt.Errorf("%w: key prefix too long", ErrConfig)
	}
	for i := 0; i < len(c.KeyPrefix); i++ {
		if b := c.KeyPrefix[i]; b <= ' ' || b == 0x7f {
			return fmt.Errorf("%w: key prefix has a space or control byte", ErrConfig)
		}
	}
	if c.Verify && c.ValueSize < minVerifyValue(len(c.KeyPrefix)+keyDigits) {
		return fmt.Errorf("%w: verify needs values of at least %d bytes", ErrConfig,
			minVerifyValue(len(c.KeyPrefix)+keyDigits))
	}
	return nil
}

// shared is the state every worker of a run reads.
type shared struct {
	cfg   *Config
	ver   *verifier // nil without Verify
	stop  atomic.Bool
	begin time.Time // start of the measurement

	mu      sync.Mutex // protects samples and kinds
	samples []string
	kinds   map[string]bool
}

// wrong records one wrong reply.
func (s *shared) wrong(kind string, key []byte, detail string) {
	s.mu.Lock()
	if len(s.samples) < MaxWrongSamples || !s.kinds[kind] {
		s.samples = append(s.samples, kind+" "+string(key)+detail)
		if s.kinds == nil {
			s.kinds = make(map[string]bool)
		}
		s.kinds[kind] = true
	}
	s.mu.Unlock()
}

// Run runs the load described by cfg until its duration passes, its op
// count is done or ctx is cancelled. It returns an error only when the
// config is bad or the first connections cannot be opened; failures after
// that are counted in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	seed := cfg.Seed
	if seed == 0 {
		var b [8]byte
		rand.Read(b[:])
		for _, x := range b {
			seed = seed<<8 | uint64(x)
		}
	}
	sh := &shared{cfg: &cfg}
	if cfg.Verify {
		v := &verifier{size: cfg.ValueSize, keys: make([]keyState, cfg.Keys)}
		var id [runIDLen / 2]byte
		rand.Read(id[:])
		hex.Encode(v.runID[:], id[:])
		sh.ver = v
	}

	workers := make([]*worker, cfg.Conns)
	for i := range workers {
		w := newWorker(sh, i, seed)
		nc, err := cfg.Dial(ctx, cfg.Addr)
		if err != nil {
			for _, w := range workers[:i] {
				w.close()
			}
			return nil, fmt.Errorf("%w: %w", ErrDial, err)
		}
		w.attach(nc)
		workers[i] = w
	}
	defer func() {
		for _, w := range workers {
			w.close()
		}
	}()

	// The watcher stops the workers on ctx; after the stop it gives them a
	// grace period and then closes their connections so a hung server cannot
	// hold the run. It exits when done is closed.
	done := make(chan struct{})
	stopNow := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		select {
		case <-ctx.Done():
		case <-stopNow:
		case <-done:
			return
		}
		sh.stop.Store(true)
		t := time.NewTimer(5 * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			for _, w := range workers {
				w.abort()
			}
		case <-done:
		}
	}()
	defer func() { close(done); watch.Wait() }()

	res := &Result{}
	if cfg.Preload {
		runAll(workers, (*worker).preload)
		for _, w := range workers {
			res.Preloaded += w.preloaded
			res.PreloadErrors += w.errs.Load()
			w.errs.Store(0)
			w.reconnects = 0
		}
	}
	if sh.stop.Load() {
		return res, nil
	}

	if cfg.Ops > 0 {
		per, extra := cfg.Ops/int64(cfg.Conns), cfg.Ops%int64(cfg.Conns)
		for i, w := range workers {
			w.quota = per
			if int64(i) < extra {
				w.quota++
			}
		}
	}
	sh.begin = time.Now()
	var timer *time.Timer
	if cfg.Duration > 0 {
		timer = time.AfterFunc(cfg.Duration, func() { close(stopNow) })
	}
	var prog sync.WaitGroup
	progDone := make(chan struct{})
	if cfg.Progress != nil {
		prog.Add(1)
		go func() {
			defer prog.Done()
			tk := time.NewTicker(time.Second)
			defer tk.Stop()
			for {
				select {
				case <-progDone:
					return
				case <-tk.C:
					var ops, errs uint64
					for _, w := range workers {
						ops += w.ops.Load()
						errs += w.errs.Load()
					}
					cfg.Progress(time.Since(sh.begin), ops, errs)
				}
			}
		}()
	}
	runAll(workers, (*worker).measure)
	res.Elapsed = time.Since(sh.begin)
	if timer != nil {
		timer.Stop()
	}
	close(progDone)
	prog.Wait()

	for _, w := range workers {
		res.Ops += w.ops.Load()
		res.Errors += w.errs.Load()
		res.Gets += w.gets
		res.Sets += w.sets
		res.Hits += w.hits
		res.Misses += w.misses
		res.Wrong += w.wrong
		res.Reconnects += w.reconnects
		res.Latency.Merge(&w.hist)
	}
	sh.mu.Lock()
	res.WrongSamples = append([]string(nil), sh.samples...)
	sh.mu.Unlock()
	return res, nil
}

// runAll runs f on every worker in its own goroutine and waits for all.
func runAll(ws []*worker, f func(*worker)) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(w)
		}()
	}
	wg.Wait()
}

// newRand returns the random source of worker id.
func newRand(seed uint64, id int) *mrand.Rand {
	return mrand.New(mrand.NewPCG(seed, uint64(id)*0x9e3779b97f4a7c15+1))
}
