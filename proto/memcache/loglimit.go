package memcache

import (
	"strconv"
	"sync"
	"time"
)

// Lines about single connections. A client can open and break connections
// as fast as it likes; a log line for each (an invalid binary packet, a
// line too long, a reset) would let any client fill the disk, and an
// accept that fails while descriptors are short would log once a second
// for as long as that lasts. At most connLogBurst such lines are written
// per connLogWindow; the first line written after some were left out says
// how many.
const (
	connLogBurst  = 10
	connLogWindow = time.Minute
)

// logLimit counts the lines of one kind in the current window.
type logLimit struct {
	mu      sync.Mutex // protects the fields below
	start   time.Time  // of the current window
	n       int        // lines written in it
	dropped int        // lines left out since the last one written
}

// allow reports whether a line may be written at now, and how many lines
// were left out before it.
func (l *logLimit) allow(now time.Time) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= connLogWindow {
		l.start, l.n = now, 0
	}
	if l.n >= connLogBurst {
		l.dropped++
		return false, 0
	}
	l.n++
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

// connLogf logs a line about one connection (or one accept) through l,
// which limits how many are written.
func (s *Server) connLogf(l *logLimit, format string, args ...any) {
	if s.Logf == nil {
		return
	}
	ok, dropped := l.allow(time.Now())
	if !ok {
		return
	}
	if dropped > 0 {
		format += " (" + strconv.Itoa(dropped) + " more such lines left out)"
	}
	s.Logf(format, args...)
}
