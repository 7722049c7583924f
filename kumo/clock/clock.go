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
// the receiver passes it to Observe; Now issues a new, strictly increasing
// ClockTime. A Clock is lock-free and safe for concurrent use.
package clock

import (
	"errors"
	"fmt"
	"os"
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
}

// Clock is a hybrid logical clock. The zero value is not usable; use New.
type Clock struct {
	last     atomic.Uint64 // the largest ClockTime issued or observed
	wall     func() time.Time
	offset   time.Duration
	maxAhead time.Duration
}

// New returns a Clock that starts at the current wall-clock second.
func New(o Options) *Clock {
	c := &Clock{wall: o.Wall, offset: o.Offset, maxAhead: o.MaxAhead}
	if c.wall == nil {
		c.wall = time.Now
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
//
// A value below 2^32 is a kumofs Lamport clock (kumofs sends a 32-bit
// counter where kumo sends a ClockTime): it is merged into the counter part
// only, keeping the current seconds. With Options.MaxAhead set, a ClockTime
// too far ahead of the wall clock is refused with ErrTooFarAhead; so is one
// whose seconds part is 2^32-1 (the year 2106), which is reserved.
func (c *Clock) Observe(ct uint64) error {
	if Seconds(ct) == counterMask {
		// Reserved: merging it could leave Now no larger value to issue.
		return fmt.Errorf("%w: %#x", ErrTooFarAhead, ct)
	}
	if ct >= lamportLimit && c.maxAhead > 0 {
		limit := int64(c.wallSeconds()) + int64(c.maxAhead/time.Second)
		if int64(Seconds(ct)) > limit {
			return fmt.Errorf("%w: %d s > %d s", ErrTooFarAhead, Seconds(ct), limit)
		}
	}
	for {
		old := c.last.Load()
		next := ct
		if ct < lamportLimit {
			next = old&^counterMask | ct
		}
		if next <= old || c.last.CompareAndSwap(old, next) {
			return nil
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
