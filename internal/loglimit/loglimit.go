// Package loglimit bounds how many lines of one kind a daemon logs.
//
// A stranger can open and break connections as fast as it likes; a log line
// for each (an invalid packet, a malformed frame, a reset) would let it fill
// the disk, and an accept that fails while descriptors are short would log
// once a second for as long as that lasts. A Limiter lets Burst lines
// through per minute; the first line written after some were left out says
// how many.
package loglimit

import (
	"strconv"
	"sync"
	"time"
)

// Burst is how many lines a Limiter writes per Window.
const Burst = 10

// Window is the period Burst applies to.
const Window = time.Minute

// A Limiter passes at most Burst lines (or its own burst, NewBurst) per
// Window to its Logf. The zero value is not usable; use New.
type Limiter struct {
	logf  func(format string, args ...any)
	burst int

	mu      sync.Mutex // protects the fields below
	start   time.Time  // of the current window
	n       int        // lines written in it
	dropped int        // lines left out since the last one written
}

// New returns a Limiter writing to logf, which may be nil (nothing is
// written).
func New(logf func(format string, args ...any)) *Limiter {
	return &Limiter{logf: logf, burst: Burst}
}

// NewBurst is New with burst lines per Window, for lines an operator
// wants to see even when many come at once (a cluster's servers
// reconnecting), but a stranger must not be able to repeat without end.
func NewBurst(logf func(format string, args ...any), burst int) *Limiter {
	return &Limiter{logf: logf, burst: burst}
}

// Allow reports whether a line may be written at now, and how many lines
// were left out before it.
func (l *Limiter) Allow(now time.Time) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= Window {
		l.start, l.n = now, 0
	}
	if l.n >= l.burst {
		l.dropped++
		return false, 0
	}
	l.n++
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// Logf writes the line unless Burst lines were written in this Window;
// it has the signature of a logf so that it can stand in for one.
func (l *Limiter) Logf(format string, args ...any) {
	if l.logf == nil {
		return
	}
	ok, dropped := l.Allow(time.Now())
	if !ok {
		return
	}
	if dropped > 0 {
		format += " (" + strconv.Itoa(dropped) + " more such lines left out)"
	}
	l.logf(format, args...)
}
