// Package memreturn gives a quiet daemon's freed memory back to the
// operating system.
//
// The Go runtime collects garbage when the heap has grown by GOGC percent
// since the last collection, or every two minutes; it returns freed
// memory to the system gradually, keeping about as much as the heap
// target. A daemon whose request paths allocate almost nothing therefore
// keeps what a burst left (the buffers of thousands of clients that came
// and went, the copies of a burst of large values: tens to a hundred
// megabytes more than before it) for minutes after the burst: no
// collection runs, and sync.Pool's buffers outlive one. Run watches the
// runtime's own counters and, once a check interval passed without a
// collection while more than a slack's worth of the heap is garbage or
// free but still held, runs two collections and returns what is free.
// Busy daemons collect on their own and are left alone; a quiet one with
// nothing to give back costs one read of the runtime's metrics per
// interval.
package memreturn

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Sample is what Run reads of the runtime at each check.
type Sample struct {
	GCs      uint64 // completed collections
	Objects  uint64 // heap bytes in objects, live or not yet collected
	Live     uint64 // heap bytes live at the end of the last collection
	HeapFree uint64 // heap bytes free and not returned to the system
}

// Held returns the heap bytes s holds beyond the live ones: garbage not
// yet collected and free memory not yet returned.
func (s Sample) Held() uint64 {
	var garbage uint64
	if s.Objects > s.Live {
		garbage = s.Objects - s.Live
	}
	return garbage + s.HeapFree
}

// Due reports whether memory should be returned at a check that read cur,
// the previous check having read prev: no collection ran in between, and
// more than slack, and more than a quarter of the live heap, is held
// beyond the live heap (a large heap that grows slowly is left to the
// runtime, which lets garbage grow to the live heap's size).
func Due(prev, cur Sample, slack uint64) bool {
	return cur.GCs == prev.GCs && cur.Held() > max(slack, cur.Live/4)
}

var names = []string{
	"/gc/cycles/total:gc-cycles",
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/free:bytes",
}

// Read samples the runtime's metrics.
func Read() Sample {
	ms := make([]metrics.Sample, len(names))
	for i, n := range names {
		ms[i].Name = n
	}
	metrics.Read(ms)
	v := func(i int) uint64 {
		if ms[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return ms[i].Value.Uint64()
	}
	return Sample{GCs: v(0), Objects: v(1), Live: v(2), HeapFree: v(3)}
}

// Free runs two collections (the second empties what sync.Pools kept
// through the first) and returns the free heap to the system.
func Free() {
	runtime.GC()
	debug.FreeOSMemory()
}

// Defaults for Run.
const (
	Every = 30 * time.Second
	Slack = 32 << 20
)

// Run checks every interval, with read, whether memory is due to be
// returned (Due with slack) and if so calls free, until ctx is done. A
// return counts as a collection: the check after it starts afresh.
func Run(ctx context.Context, every time.Duration, slack uint64, read func() Sample, free func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	prev := read()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := read()
		if Due(prev, cur, slack) {
			free()
			cur = read()
		}
		prev = cur
	}
}

// Start runs Run with the defaults and the runtime's metrics on a
// goroutine of its own; the returned stop ends it and waits for it.
func Start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Every, Slack, Read, Free)
	}()
	return func() {
		cancel()
		<-done
	}
}
