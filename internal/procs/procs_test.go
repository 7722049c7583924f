package procs

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// Ensure that the Controller gives a P back only after downSamples
// saturated samples in a row in which the process left more than spareUse
// of its Ps unused, takes one back only after upSamples samples with idle
// CPU in which it used them all, never leaves 1..max, and that any other
// sample (or an unknown one) starts the count again.
func TestController(t *testing.T) {
	busy := func(used float64) Sample { return Sample{Used: used, Idle: 0.05} }
	free := func(used float64) Sample { return Sample{Used: used, Idle: 1.5} }
	tests := []struct {
		name    string
		max     int
		samples []Sample
		want    []int
	}{
		{"saturated machine, light process", 2,
			[]Sample{busy(0.9), busy(0.9), busy(0.9), busy(0.9), busy(0.9), busy(0.9)},
			[]int{2, 2, 1, 1, 1, 1}},
		{"process using its Ps keeps them", 2,
			[]Sample{busy(1.6), busy(1.7), busy(1.9), busy(1.55)},
			[]int{2, 2, 2, 2}},
		{"idle machine keeps every P", 4,
			[]Sample{free(0.1), free(0.1), free(0.1), free(0.1)},
			[]int{4, 4, 4, 4}},
		{"interrupted run starts again", 2,
			[]Sample{busy(0.5), busy(0.5), free(0.5), busy(0.5), busy(0.5), {Idle: -1}, busy(0.5), busy(0.5), busy(0.5)},
			[]int{2, 2, 2, 2, 2, 2, 2, 2, 1}},
		{"down to half, not below", 4,
			[]Sample{busy(0.3), busy(0.3), busy(0.3), busy(0.3), busy(0.3), busy(0.3), busy(0.3), busy(0.3), busy(0.3), busy(0.3), busy(0.3), busy(0.3)},
			[]int{4, 4, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2}},
		{"down to half of an odd count, rounded up", 3,
			[]Sample{busy(0.3), busy(0.3), busy(0.3), busy(0.3), busy(0.3), busy(0.3)},
			[]int{3, 3, 2, 2, 2, 2}},
		{"back up when the machine frees and the process is pinned", 2,
			[]Sample{busy(0.5), busy(0.5), busy(0.5), free(0.9), free(0.95), free(0.9), free(1.8)},
			[]int{2, 2, 1, 1, 2, 2, 2}},
		{"pinned but no idle CPU: stays", 2,
			[]Sample{busy(0.5), busy(0.5), busy(0.5), busy(0.99), busy(0.99), busy(0.99)},
			[]int{2, 2, 1, 1, 1, 1}},
		{"idle CPU but not pinned: stays", 2,
			[]Sample{busy(0.5), busy(0.5), busy(0.5), free(0.6), free(0.6), free(0.6)},
			[]int{2, 2, 1, 1, 1, 1}},
		{"busy but not saturated machine", 2,
			[]Sample{{Used: 0.7, Idle: 0.4}, {Used: 0.7, Idle: 0.4}, {Used: 0.7, Idle: 0.4}},
			[]int{2, 2, 1}},
		{"half a CPU idle is not enough to take one back", 2,
			[]Sample{busy(0.5), busy(0.5), busy(0.5), {Used: 0.95, Idle: 0.7}, {Used: 0.95, Idle: 0.7}, {Used: 0.95, Idle: 0.7}},
			[]int{2, 2, 1, 1, 1, 1}},
		{"one P to start with", 1,
			[]Sample{free(1), free(1), busy(0.1), busy(0.1), busy(0.1)},
			[]int{1, 1, 1, 1, 1}},
	}
	for _, tt := range tests {
		c := NewController(tt.max)
		for i, s := range tt.samples {
			if got := c.Next(s); got != tt.want[i] {
				t.Errorf("%s: after sample %d (%+v): %d Ps, want %d", tt.name, i, s, got, tt.want[i])
				break
			}
		}
	}
}

// Ensure that with the work rate known a step down on a busy machine is
// measured: undone (and no P given back for holdMin samples) when the work
// falls by more than margin, kept otherwise; that a process below its count
// tries one P more after probeMin samples and keeps it only when the work
// rises by more than margin, the wait doubling otherwise; that a trial the
// load leaves is undone; and that an idle process keeps its count.
func TestControllerTrials(t *testing.T) {
	w := func(used, work float64) Sample { return Sample{Used: used, Idle: 0.05, Work: work} }
	type run struct {
		s    Sample
		n    int // samples of s in a row
		want int // Ps after each of them
	}
	// down: three agreeing samples at 2 Ps doing 100, the step, one
	// sample to settle.
	down := []run{{w(0.9, 100), 2, 2}, {w(0.9, 100), 1, 1}, {w(0.8, 90), 1, 1}}
	tests := []struct {
		name string
		runs []run
	}{
		{"a step down that costs work is undone and held", append(down,
			run{w(0.8, 90), 2, 1}, run{w(0.8, 90), 1, 2},
			run{w(0.9, 100), holdMin + 1, 2}, run{w(0.9, 100), 1, 1})},
		{"a partial first second does not lower the base", []run{
			{w(0.3, 40), 1, 2}, {w(0.9, 100), 1, 2}, {w(0.9, 100), 1, 1}, {w(0.8, 88), 3, 1},
			{w(0.8, 88), 1, 2}}},
		{"a partial last second does not fail a trial", append(down,
			run{w(0.8, 96), 2, 1}, run{w(0.3, 30), 1, 1}, run{w(0.8, 96), probeMin - 1, 1})},
		{"a step down within the margin stays", append(down,
			run{w(0.8, 96), 3, 1}, run{w(0.8, 96), probeMin - 1, 1})},
		{"one more P that works more stays and holds", append(down,
			run{w(0.8, 96), 3, 1}, run{w(0.8, 96), probeMin - 1, 1}, run{w(0.8, 96), 1, 2},
			run{w(0.9, 120), 4, 2}, run{w(0.9, 120), holdMin + 1, 2}, run{w(0.9, 120), 1, 1})},
		{"one more P that does not stays one fewer; the wait doubles", append(down,
			run{w(0.8, 96), 3, 1}, run{w(0.8, 96), probeMin - 1, 1}, run{w(0.8, 96), 1, 2},
			run{w(0.9, 100), 3, 2}, run{w(0.9, 100), 1, 1},
			run{w(0.8, 96), 2*probeMin - 1, 1}, run{w(0.8, 96), 1, 2})},
		{"the load leaves a trial: back to where it was, held", append(down,
			run{w(0.1, 5), 1, 2}, run{w(0.1, 5), 10, 2},
			run{w(0.9, 100), holdMin + downSamples - 12, 2}, run{w(0.9, 100), 1, 1})},
		{"bursts shorter than a trial try one step per hold", append(append(down,
			run{w(0.1, 5), 1, 2}, run{w(0.9, 100), 3, 2}, run{w(0.1, 5), 1, 2}),
			run{w(0.9, 100), holdMin + downSamples - 6, 2}, run{w(0.9, 100), 1, 1})},
		{"an interrupted trial does not double the next hold", append(append(down,
			run{w(0.1, 5), 1, 2}, run{w(0.9, 100), holdMin + downSamples - 2, 2}, run{w(0.9, 100), 1, 1},
			run{w(0.8, 90), 1, 1}, run{w(0.8, 90), 2, 1}, run{w(0.8, 90), 1, 2}),
			run{w(0.9, 100), holdMin + downSamples - 2, 2}, run{w(0.9, 100), 1, 1})},
		{"an idle process at every P stays", []run{{w(0.1, 50), 10, 2}}},
		{"an idle process keeps its count", []run{{w(0.9, -1), 2, 2}, {w(0.9, -1), 1, 1},
			{w(0.1, -1), 10, 1}}},
		{"work unknown: the step stays", []run{{w(0.9, -1), 2, 2}, {w(0.9, -1), 1, 1},
			{w(0.5, -1), probeMin + 10, 1}}},
	}
	for _, tt := range tests {
		c := NewController(2)
		i := 0
	samples:
		for _, r := range tt.runs {
			for range r.n {
				if got := c.Next(r.s); got != r.want {
					t.Errorf("%s: after sample %d (%+v): %d Ps, want %d", tt.name, i, r.s, got, r.want)
					break samples
				}
				i++
			}
		}
	}
}

const statText = `cpu  4705 356 584 3699176 23 0 11 0 0 0
cpu0 1393 280 283 1849578 12 0 3 0 0 0
cpu1 3312 76 301 1849598 11 0 8 0 0 0
intr 114930548 113199788 3 0 5 263 0 4 [... lots more numbers ...]
ctxt 1990473
btime 1062191376
processes 2915
procs_running 1
`

// Ensure that parseStat reads the idle and total ticks of the first line
// and counts the per-CPU lines, and refuses what is not /proc/stat; and
// that no prefix of a valid file parses to anything else (a truncated
// read) except with fewer CPUs.
func TestParseStat(t *testing.T) {
	idle, total, cpus, ok := parseStat([]byte(statText))
	if !ok || idle != 3699176+23 || total != 4705+356+584+3699176+23+0+11+0 || cpus != 2 {
		t.Fatalf("parseStat = %d, %d, %d, %v", idle, total, cpus, ok)
	}
	for _, bad := range []string{"", "cpu\n", "cpu 1 2 3\ncpu0 1 2 3 4\n", "cpu  1 2 x 4 5\ncpu0\n",
		"intr 1 2 3 4 5\ncpu0 1 2 3 4\n", "cpu 1 2 3 4 5\n", "cpu 1 2 3 4 -5\ncpu0\n",
		"cpu 1 2 3 4 99999999999999999999\ncpu0\n", "cpu 1 2 3 18446744073709551615 1\ncpu0\n"} {
		if _, _, _, ok := parseStat([]byte(bad)); ok {
			t.Errorf("parseStat(%q) ok", bad)
		}
	}
	for n := 0; n < len(statText); n++ {
		i, tot, c, ok := parseStat([]byte(statText[:n]))
		if ok && (i != idle || tot != total || c > cpus) {
			t.Fatalf("prefix %d: %d, %d, %d", n, i, tot, c)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statText))
	f.Fuzz(func(t *testing.T, b []byte) {
		idle, total, cpus, ok := parseStat(b)
		if ok && (idle > total || cpus < 1) {
			t.Fatalf("parseStat = %d, %d, %d", idle, total, cpus)
		}
	})
}

// Ensure that with GOMAXPROCS in the environment the Adapter changes
// nothing and Run returns at once.
func TestRunRespectsEnvironment(t *testing.T) {
	t.Setenv("GOMAXPROCS", "3")
	if Enabled() {
		t.Fatal("enabled with GOMAXPROCS set")
	}
	before := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		(&Adapter{Changed: func(int) { t.Error("changed") }}).Run(ctx)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Run did not return")
	}
	if runtime.GOMAXPROCS(0) != before {
		t.Fatal("GOMAXPROCS changed")
	}
}

// Ensure that Run reads Adapter.Work at the start and once per sample, and
// returns when its context ends.
func TestRunReadsWork(t *testing.T) {
	if !Enabled() {
		t.Skip("the adapter is off here")
	}
	reads := make(chan struct{}, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		(&Adapter{Work: func() uint64 {
			select {
			case reads <- struct{}{}:
			default:
			}
			return 0
		}}).Run(ctx)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	timeout := time.After(10 * time.Second)
	for i := range 2 {
		select {
		case <-reads:
		case <-timeout:
			t.Fatalf("Work read %d times in 10 s, want 2", i)
		}
	}
}
