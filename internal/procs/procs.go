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
// An Adapter looks once a second at how much CPU the process used and how
// much the machine left idle. While the machine has less than half a CPU
// idle and the process uses clearly less than its Ps could, it gives one P
// back, down to half the count it started with; once the machine has a
// whole CPU idle and the process uses all its Ps, it takes one more, up to
// that count (then the runtime's own default again). A change needs
// several samples in a row to agree, so a burst does not make the count
// flap. With GOMAXPROCS set in the
// environment, or where the machine's idle time is unknown (systems other
// than Linux), it changes nothing.
package procs

import (
	"context"
	"os"
	"runtime"
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
	// downSamples and upSamples: consecutive samples that must agree.
	downSamples = 3
	upSamples   = 2
)

// Sample is what the process and the machine did over one interval.
type Sample struct {
	// Used is the CPU time the process used, in CPUs (seconds of CPU per
	// second of the interval).
	Used float64
	// Idle is the machine's idle CPU over the interval, in CPUs; negative
	// if unknown.
	Idle float64
}

// Controller decides the P count from samples. It is pure logic; Adapter
// feeds it. The zero value is not usable; use NewController.
type Controller struct {
	max, min, p int
	down, up    int // consecutive samples for giving a P back, taking one
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
	return &Controller{max: max, min: (max + 1) / 2, p: max}
}

// Procs returns the current P count.
func (c *Controller) Procs() int { return c.p }

// Next takes one sample and returns the P count to run with from now.
func (c *Controller) Next(s Sample) int {
	if s.Idle < 0 {
		c.down, c.up = 0, 0
		return c.p
	}
	p := float64(c.p)
	switch {
	case c.p > c.min && s.Idle < busyIdle && s.Used < p-spareUse:
		c.up = 0
		if c.down++; c.down >= downSamples {
			c.down = 0
			c.p--
		}
	case c.p < c.max && s.Idle >= freeIdle && s.Used >= p-fullUse:
		c.down = 0
		if c.up++; c.up >= upSamples {
			c.up = 0
			c.p++
		}
	default:
		c.down, c.up = 0, 0
	}
	return c.p
}

// Every is how often an Adapter samples.
const Every = time.Second

// Adapter applies a Controller to this process's GOMAXPROCS.
type Adapter struct {
	// Changed, if set, hears of each change (a log line, a gauge).
	Changed func(procs int)
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
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		cpu, ok1 := processCPU()
		idle, total, cpus, ok2 := machineCPU()
		s := Sample{Idle: -1}
		if wall := now.Sub(lastWall); ok1 && ok2 && wall > 0 && total > lastTotal {
			s.Used = float64(cpu-lastCPU) / float64(wall)
			s.Idle = float64(idle-lastIdle) / float64(total-lastTotal) * float64(cpus)
		}
		lastWall, lastCPU, lastIdle, lastTotal = now, cpu, idle, total
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
