// Package clock issues kumo's ClockTimes from a hybrid logical clock.
//
// A ClockTime is the 64-bit value (unix_seconds << 32) | counter that stamps
// every stored version, every hash space and every memcached CAS unique.
// Unlike kumofs (a 32-bit Lamport counter next to the wall clock, compared
// with a 5-second fuzz), ClockTimes here compare as plain unsigned integers:
// the seconds part never goes below the largest seconds seen from any peer,
// and the counter breaks ties within a second. A node whose wall clock lags
// therefore still issues versions newer than everything it has seen, and
// cannot lose newer writes.
//
// Each process owns one Clock. Every RPC carries the sender's ClockTime and
// the receiver passes it to Observe (or ObserveFrom); Now issues a new,
// strictly increasing ClockTime. Observe may refuse a peer clock too far
// ahead of the local wall clock (Options.MaxAhead), so that one bad peer
// cannot drag the cluster's versions into the future; Advance merges a
// ClockTime unconditionally, for a version already stored that the next one
// must beat. A Clock is safe for concurrent use; Now, Observe and Advance
// are lock-free (a refusal takes a lock to rate-limit its report).
package clock

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by this package.
var (
	// ErrTooFarAhead reports a peer clock more than Options.MaxAhead ahead of
	// the local wall clock; Observe did not merge it.
	ErrTooFarAhead = errors.New("clock: peer clock too far ahead")
	// ErrBadOffset reports an unparsable KUMO_CLOCK_OFFSET.
	ErrBadOffset = errors.New("clock: bad KUMO_CLOCK_OFFSET")
)

// OffsetEnv is the environment variable OffsetFromEnv reads: a Go duration
// such as "-90s" added to the wall clock, for clock-skew tests.
const OffsetEnv = "KUMO_CLOCK_OFFSET"

// DefaultMaxAhead is the Options.MaxAhead the daemons use: well above the
// skew of hosts whose clocks are kept by NTP (or left alone for a while),
// far below a clock that is simply wrong.
const DefaultMaxAhead = 10 * time.Minute

// DefaultRefusedEvery is the Options.RefusedEvery used when it is 0.
const DefaultRefusedEvery = time.Minute

// maxRefusers bounds the peers whose refusals are remembered for rate
// limiting; past it the memory is cleared (and each peer reported again).
const maxRefusers = 1024

// lamportLimit: an observed value below it is a kumofs 32-bit Lamport clock,
// not a ClockTime.
const lamportLimit = 1 << 32

const counterMask = 1<<32 - 1

// Make returns the ClockTime of seconds sec and counter n.
func Make(sec, n uint32) uint64 { return uint64(sec)<<32 | uint64(n) }

// Seconds returns the unix-seconds part of ct.
func Seconds(ct uint64) uint32 { return uint32(ct >> 32) }

// Counter returns the counter part of ct.
func Counter(ct uint64) uint32 { return uint32(ct) }

// Time returns the wall-clock time of ct's seconds part.
func Time(ct uint64) time.Time { return time.Unix(int64(Seconds(ct)), 0) }

// Options configure a Clock. The zero value is the real wall clock with no
// offset and no limit.
type Options struct {
	// Wall returns the wall-clock time; nil means time.Now. Tests inject it.
	Wall func() time.Time
	// Offset is added to every wall-clock reading (skew tests; see
	// OffsetFromEnv).
	Offset time.Duration
	// MaxAhead, if positive, makes Observe refuse a peer ClockTime whose
	// seconds are more than MaxAhead ahead of the local wall clock, so that
	// one host with a wildly wrong clock cannot drag the cluster's versions
	// into the future. 0 accepts every clock.
	MaxAhead time.Duration
	// Refused, if set, hears of the peer clocks Observe and ObserveFrom
	// refused: the first refusal from a peer at once, later ones at most
	// once per RefusedEvery per peer, with n the refusals from that peer
	// since its last report (the first included). peer is the String of
	// what ObserveFrom was given ("" for Observe). It runs on the observing
	// goroutine, under the clock's refusal lock: it must be quick (log a
	// line) and must not call back into the Clock.
	Refused func(peer string, ct uint64, err error, n uint64)
	// RefusedEvery rate-limits Refused per peer; 0 means
	// DefaultRefusedEvery.
	RefusedEvery time.Duration
}

// Clock is a hybrid logical clock. The zero value is not usable; use New.
type Clock struct {
	last     atomic.Uint64 // the largest ClockTime issued or observed
	refused  atomic.Uint64 // peer clocks refused since New
	wall     func() time.Time
	offset   time.Duration
	maxAhead time.Duration

	report      func(peer string, ct uint64, err error, n uint64)
	reportEvery time.Duration

	mu       sync.Mutex          // protects refusers; taken only on a refusal
	refusers map[string]*refuser // by peer
}

// refuser is the rate-limit state of one peer whose clock was refused.
type refuser struct {
	reported time.Time // when Refused last heard of this peer
	pending  uint64    // refusals since then
}

// New returns a Clock that starts at the current wall-clock second.
func New(o Options) *Clock {
	c := &Clock{wall: o.Wall, offset: o.Offset, maxAhead: o.MaxAhead, report: o.Refused, reportEvery: o.RefusedEvery}
	if c.wall == nil {
		c.wall = time.Now
	}
	if c.reportEvery <= 0 {
		c.reportEvery = DefaultRefusedEvery
	}
	c.last.Store(Make(c.wallSeconds(), 0))
	return c
}

// wallSeconds returns the wall clock plus offset in unix seconds, clamped to
// the 32-bit seconds field.
func (c *Clock) wallSeconds() uint32 {
	s := c.wall().Add(c.offset).Unix()
	switch {
	case s < 0:
		return 0
	case s > counterMask:
		return counterMask
	}
	return uint32(s)
}

// Now issues a new ClockTime, strictly greater than every ClockTime this
// Clock issued or observed before. Its seconds part is the larger of the wall
// clock and the largest seconds seen; within one second the counter counts
// up, and when it would overflow the seconds advance by one.
func (c *Clock) Now() uint64 {
	wall := c.wallSeconds()
	for {
		old := c.last.Load()
		next := Make(wall, 0)
		if next <= old {
			next = old + 1 // counter++; a carry advances the seconds
			if next == 0 {
				panic("clock: ClockTime overflow (year 2106)")
			}
		}
		if c.last.CompareAndSwap(old, next) {
			return next
		}
	}
}

// Observe merges a peer's clock so that the next Now is greater than ct.
// It is ObserveFrom with an unnamed peer.
//
// A value below 2^32 is a kumofs Lamport clock (kumofs sends a 32-bit
// counter where kumo sends a ClockTime): it is merged into the counter part
// only, keeping the current seconds. With Options.MaxAhead set, a ClockTime
// too far ahead of the wall clock is refused with ErrTooFarAhead; so is one
// whose seconds part is 2^32-1 (the year 2106), which is reserved.
func (c *Clock) Observe(ct uint64) error { return c.ObserveFrom(nil, ct) }

// A Peer names where a clock came from (an address or other name) for the
// Options.Refused report and its rate limit. String is called only when a
// clock is refused, so a Peer that formats an address costs nothing on the
// path of every request.
type Peer interface{ String() string }

// Name is a Peer given by its name.
type Name string

// String returns n.
func (n Name) String() string { return string(n) }

// ObserveFrom is Observe for a clock that came from peer (nil: unnamed).
func (c *Clock) ObserveFrom(peer Peer, ct uint64) error {
	if Seconds(ct) == counterMask {
		// Reserved: merging it could leave Now no larger value to issue.
		return c.refuse(peer, ct, fmt.Errorf("%w: %#x", ErrTooFarAhead, ct))
	}
	if ct >= lamportLimit && c.maxAhead > 0 {
		limit := int64(c.wallSeconds()) + int64(c.maxAhead/time.Second)
		if int64(Seconds(ct)) > limit {
			return c.refuse(peer, ct, fmt.Errorf("%w: %d s > %d s (%v ahead of the wall clock at most)",
				ErrTooFarAhead, Seconds(ct), limit, c.maxAhead))
		}
	}
	c.merge(ct)
	return nil
}

// Advance merges ct like Observe but never refuses it (the reserved year
// 2106 aside): for the ClockTime of a version already stored, which the
// next version of the same key must exceed whatever the wall clock says.
// Peer clocks that merely ride on a message go to Observe.
func (c *Clock) Advance(ct uint64) {
	if Seconds(ct) == counterMask {
		ct = Make(counterMask-1, counterMask) // the largest Now can still beat
	}
	c.merge(ct)
}

// Refused returns the number of peer clocks Observe and ObserveFrom refused
// since New.
func (c *Clock) Refused() uint64 { return c.refused.Load() }

// refuse counts a refused peer clock, reports it to Options.Refused if this
// peer's rate limit allows, and returns err.
func (c *Clock) refuse(p Peer, ct uint64, err error) error {
	c.refused.Add(1)
	if c.report == nil {
		return err
	}
	var peer string
	if p != nil {
		peer = p.String()
	}
	now := c.wall() // the injected wall clock: tests step it
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.refusers[peer]
	if r == nil {
		if c.refusers == nil || len(c.refusers) >= maxRefusers {
			c.refusers = make(map[string]*refuser)
		}
		r = &refuser{}
		c.refusers[peer] = r
	} else if now.Sub(r.reported) < c.reportEvery {
		r.pending++
		return err
	}
	n := r.pending + 1
	r.reported, r.pending = now, 0
	c.report(peer, ct, err, n)
	return err
}

// merge raises the clock to ct (a ClockTime) or merges a kumofs Lamport
// counter (below 2^32) into the counter part.
func (c *Clock) merge(ct uint64) {
	for {
		old := c.last.Load()
		next := ct
		if ct < lamportLimit {
			next = old&^counterMask | ct
		}
		if next <= old || c.last.CompareAndSwap(old, next) {
			return
		}
	}
}

// Current returns the largest ClockTime issued or observed so far (at least
// the wall-clock second at New) without issuing a new one. The next Now is
// greater.
func (c *Clock) Current() uint64 { return c.last.Load() }

// OffsetFromEnv returns the duration in KUMO_CLOCK_OFFSET (for example
// "-90s" or "2m"), or 0 when it is unset or empty.
func OffsetFromEnv() (time.Duration, error) {
	s := os.Getenv(OffsetEnv)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %w", ErrBadOffset, s, err)
	}
	return d, nil
}
