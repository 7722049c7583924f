// Package procs sizes the Go runtime's number of Ps (GOMAXPROCS) to the CPU
// a daemon can actually get.
//
// The runtime gives a process one P per CPU. When kumo's daemons share a
// small machine with each other and with their clients (a test box,
// kumo-local, a 2-CPU VM running a server and a gateway), a daemon that holds
// a P per CPU keeps waking a thread on another CPU for each goroutine made
// runnable while its first P is busy. On a machine with little idle CPU
// that buys no CPU time, and each cross-CPU wake-up costs more than the work it
// hands over: with one P per daemon the same clusters answered 9-28% more
// requests (BENCHMARKS.md, sessions 12, 13 and 17). A daemon alone on its
// machine must keep every P, though, so a fixed GOMAXPROCS=1 is no default.
//
// An Adapter looks once a second at how much CPU the process used, how
// much the machine left idle and, when told (Adapter.Work), how many
// requests the process served. While the machine has less than half a CPU
// idle and the process, busy, uses clearly less than its Ps could, it
// gives one P back, down to half the count it started with; once the
// machine has a whole CPU idle and the process uses all its Ps, it takes
// one more, up to that count (then the runtime's own default again). A
// change needs several samples in a row to agree, so a burst does not make
// the count flap.
//
// Fewer threads also get a smaller share of the CPUs where the kernel
// shares them thread by thread (processes of one session under Linux's
// scheduler autogroups, or of one cgroup): there a daemon that gives a P
// back can serve less. So with the requests counted, a step down on a busy
// machine is a trial that is undone when the following seconds serve
// clearly less than the ones before, and a process below its count tries
// one more P now and then, keeping it when it serves clearly more (see
// Controller). With GOMAXPROCS set in the environment, or where the
// machine's idle time is unknown (systems other than Linux), it changes
// nothing.
package procs

import (
	"context"
	"os"
	"runtime"
	"slices"
	"time"
)

// Thresholds of Controller, in CPUs.
const (
	// busyIdle: the machine counts as busy below this much idle CPU (on a
	// 2-CPU machine, 75% busy; on 16 CPUs, 97%).
	busyIdle = 0.5
	// freeIdle: the machine has CPU to spare from this much idle CPU.
	freeIdle = 1.0
	// spareUse: a process that uses this much less than its Ps could
	// does not need them all.
	spareUse = 0.5
	// fullUse: a process within this much of its Ps uses them all.
	fullUse = 0.3
	// minUse: a process that uses less is too idle for its P count to
	// matter, or for a trial to measure anything; its count stays.
	minUse = 0.25
	// downSamples and upSamples: consecutive samples that must agree.
	downSamples = 3
	upSamples   = 2
)

// Trials: a step taken on a busy machine is a guess, so the Controller
// measures it when it knows the work done (Sample.Work).
const (
	// trialSamples: samples a trial takes the median of, after one skipped
	// while the change settles; the median of as many before a step is its
	// base.
	trialSamples = 3
	// margin: one P fewer stays unless the work rate falls by more than
	// this fraction; one more stays only if it rises by more.
	margin = 0.05
	// holdMin and holdMax bound, in samples, how long no P is given back
	// after a trial showed that the process does more work with more Ps.
	// The hold doubles with each such trial in a row. A trial the load
	// left before it ended holds as long, without doubling.
	holdMin = 60
	holdMax = 32 * 60
	// probeMin and probeMax bound, in samples, the wait before a process
	// below its count tries one more P on a busy machine. The wait doubles
	// with each trial in a row that one more did not win.
	probeMin = 30
	probeMax = 16 * 60
)

// Sample is what the process and the machine did over one interval.
type Sample struct {
	// Used is the CPU time the process used, in CPUs (seconds of CPU per
	// second of the interval).
	Used float64
	// Idle is the machine's idle CPU over the interval, in CPUs; negative
	// if unknown.
	Idle float64
	// Work is the process's work rate over the interval, in any unit that
	// grows with the requests it served (requests per second); negative if
	// unknown, and then no step is measured.
	Work float64
}

// trial is a step under measurement.
type trial struct {
	dir   int                   // +1: one P more; -1: one fewer; 0: no trial
	base  float64               // work rate before the step
	n     int                   // samples since the step
	rates [trialSamples]float64 // work rates of the measured samples
}

// Controller decides the P count from samples. It is pure logic; Adapter
// feeds it. The zero value is not usable; use NewController.
//
// The rules on machine idle time alone are guesses: on a busy machine,
// fewer Ps spare the process the cross-CPU wake-ups, but where the CPUs are
// shared thread by thread (processes of one session, of one cgroup) they
// also get it a smaller share. So with the work rate known, a step down
// on a busy machine is a trial: it is undone when the next samples show
// less work, and then no P is given back for a while. And a process below
// its count on a busy machine now and then tries one P more, which stays
// when it shows more work. An idle process keeps its count.
type Controller struct {
	max, min, p int
	down, up    int // consecutive samples for giving a P back, taking one

	recent  [trialSamples]float64 // work rates of the last working samples at p
	nrecent int                   // how many of recent are filled (up to trialSamples)
	t       trial

	hold, holdNext   int // samples left without a step down; the next hold
	probe, probeNext int // samples left before trying one more P; the next wait
}

// NewController returns a Controller that starts at, and never goes above,
// max Ps, nor below half of them (rounded up). The floor bounds what a
// wrong guess can cost: on a busy machine a process with fewer threads
// gets a smaller share of the CPUs, uses less, and would otherwise be
// asked to give back the next P too, with nothing (no idle CPU) to ever
// take them back. The gain was measured on 2 CPUs, where the floor is 1.
func NewController(max int) *Controller {
	if max < 1 {
		max = 1
	}
	return &Controller{max: max, min: (max + 1) / 2, p: max, holdNext: holdMin, probeNext: probeMin}
}

// Procs returns the current P count.
func (c *Controller) Procs() int { return c.p }

// Next takes one sample and returns the P count to run with from now.
func (c *Controller) Next(s Sample) int {
	if s.Idle < 0 {
		c.down, c.up = 0, 0
		return c.p
	}
	if c.hold > 0 {
		c.hold--
	}
	if c.probe > 0 {
		c.probe--
	}
	if c.t.dir != 0 {
		c.measure(s)
		return c.p
	}
	if s.Used < minUse {
		// Idle: the count does not matter now, and no step is measured.
		// It stays, so that what the trials learned holds for the next
		// load; a probe corrects it if that load differs.
		c.down, c.up, c.nrecent = 0, 0, 0
		return c.p
	}
	if s.Work >= 0 {
		copy(c.recent[:], c.recent[1:])
		c.recent[trialSamples-1] = s.Work
		c.nrecent = min(c.nrecent+1, trialSamples)
	} else {
		c.nrecent = 0
	}
	p := float64(c.p)
	switch {
	case c.p < c.max && s.Idle >= freeIdle && s.Used >= p-fullUse:
		c.down = 0
		if c.up++; c.up >= upSamples {
			c.up = 0
			c.step(+1, false)
		}
	case c.p > c.min && c.hold == 0 && s.Idle < busyIdle && s.Used < p-spareUse:
		c.up = 0
		if c.down++; c.down >= downSamples {
			c.down = 0
			c.step(-1, true)
		}
	case c.p < c.max && c.probe == 0 && c.recentRate() > 0 && s.Idle < freeIdle:
		c.down, c.up = 0, 0
		c.step(+1, true)
	default:
		c.down, c.up = 0, 0
	}
	return c.p
}

// step moves the count by dir, as a trial if measured and the work rate of
// the last samples is known.
func (c *Controller) step(dir int, measured bool) {
	base := c.recentRate()
	c.p += dir
	c.nrecent = 0
	if measured && base > 0 {
		c.t = trial{dir: dir, base: base}
	}
}

// recentRate returns the median work rate of the last trialSamples
// working samples at the current count, or 0 if there are fewer. A median,
// not a mean: the first sample of a load, or the last, covers part of a
// second only, and would make the base or the trial look worse.
func (c *Controller) recentRate() float64 {
	if c.nrecent < trialSamples {
		return 0
	}
	return median(c.recent)
}

// median returns the middle of three rates.
func median(r [trialSamples]float64) float64 {
	slices.Sort(r[:])
	return r[trialSamples/2]
}

// measure takes a sample of the running trial and, after trialSamples of
// them, keeps the step or undoes it.
func (c *Controller) measure(s Sample) {
	if c.t.n++; c.t.n == 1 {
		return // the change settles
	}
	if s.Work < 0 || s.Used < minUse {
		// The load went away: nothing to compare; back to where it was.
		// A step down waits out the current hold (not doubled) before it
		// is tried again, as after a trial it lost: otherwise a load that
		// comes in bursts shorter than a trial would start one at every
		// burst and spend each burst's end at the count it did not choose
		// (BENCHMARKS.md, session 19: 7% of 5 s bursts).
		if c.t.dir < 0 {
			c.hold = c.holdNext
		}
		c.p -= c.t.dir
		c.t = trial{}
		c.probe = c.probeNext
		return
	}
	if c.t.rates[c.t.n-2] = s.Work; c.t.n <= trialSamples {
		return
	}
	rate := median(c.t.rates)
	var morePsWon bool
	if c.t.dir < 0 {
		morePsWon = rate < c.t.base*(1-margin)
		if morePsWon {
			c.p++
		}
	} else {
		morePsWon = rate > c.t.base*(1+margin)
		if !morePsWon {
			c.p--
		}
	}
	if morePsWon {
		c.hold = c.holdNext
		c.holdNext = min(2*c.holdNext, holdMax)
		c.probeNext = probeMin
	} else {
		c.holdNext = holdMin
		if c.t.dir > 0 {
			c.probeNext = min(2*c.probeNext, probeMax)
		}
		c.probe = c.probeNext
	}
	c.t = trial{}
}

// Every is how often an Adapter samples.
const Every = time.Second

// Adapter applies a Controller to this process's GOMAXPROCS.
type Adapter struct {
	// Changed, if set, hears of each change (a log line, a gauge).
	Changed func(procs int)
	// Work, if set, returns a count that grows with the work the process
	// has done (requests served); the Controller then measures its steps.
	// It is called once a second and must be safe for concurrent use.
	Work func() uint64
}

// Enabled reports whether Run would change anything here: GOMAXPROCS is
// not set in the environment, the process has more than one P, and the
// machine's idle time can be read.
func Enabled() bool {
	if os.Getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) < 2 {
		return false
	}
	_, _, _, ok := machineCPU()
	return ok
}

// Run adapts GOMAXPROCS until ctx is done, then gives the runtime its
// default back. It returns at once if Enabled is false.
func (a *Adapter) Run(ctx context.Context) {
	if !Enabled() {
		return
	}
	c := NewController(runtime.GOMAXPROCS(0))
	defer func() {
		if c.Procs() != c.max {
			runtime.SetDefaultGOMAXPROCS()
		}
	}()
	t := time.NewTicker(Every)
	defer t.Stop()
	lastWall := time.Now()
	lastCPU, _ := processCPU()
	lastIdle, lastTotal, _, _ := machineCPU()
	var lastWork uint64
	if a.Work != nil {
		lastWork = a.Work()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		cpu, ok1 := processCPU()
		idle, total, cpus, ok2 := machineCPU()
		s := Sample{Idle: -1, Work: -1}
		var work uint64
		if a.Work != nil {
			work = a.Work()
		}
		if wall := now.Sub(lastWall); ok1 && ok2 && wall > 0 && total > lastTotal {
			s.Used = float64(cpu-lastCPU) / float64(wall)
			s.Idle = float64(idle-lastIdle) / float64(total-lastTotal) * float64(cpus)
			if a.Work != nil && work >= lastWork {
				s.Work = float64(work-lastWork) / wall.Seconds()
			}
		}
		lastWall, lastCPU, lastIdle, lastTotal, lastWork = now, cpu, idle, total, work
		before := c.Procs()
		if p := c.Next(s); p != before {
			if p == c.max {
				runtime.SetDefaultGOMAXPROCS()
			} else {
				runtime.GOMAXPROCS(p)
			}
			if a.Changed != nil {
				a.Changed(p)
			}
		}
	}
}
