package benchload

import (
	"bytes"
	"strconv"
	"sync/atomic"
)

// keyDigits is the width of the decimal key index in every key.
const keyDigits = 10

// Value layout under Config.Verify (then truncated or padded to the value
// size, which must hold at least the header):
//
//	RUNID ':' VERSION ':' KEY ':' FILLER
//
// RUNID is 8 hex digits chosen per run, VERSION 10 decimal digits and FILLER
// letters derived from the key index and the version. Without Verify every
// value is a constant filler and replies are only checked for shape.
const (
	runIDLen   = 8
	versionOff = runIDLen + 1
	versionLen = 10
)

// minVerifyValue returns the smallest value size Verify accepts for keys of
// length keyLen.
func minVerifyValue(keyLen int) int { return runIDLen + 1 + versionLen + 1 + keyLen + 1 }

// keyState is what the generator knows about one key under Verify. Every key
// has exactly one writer (the connection index%Conns), so versions of a key
// are issued, sent and acknowledged in one order, and a get sent after the
// ack of version a and answered before version i+1 was sent must return a
// version in [a, i].
//
// A set whose outcome is unknown (an error reply, or the connection broke
// before its reply) may be applied at any later time, so its version is
// remembered in maybe, a range lo<<32|hi, and stays acceptable for the rest
// of the run.
type keyState struct {
	acked  atomic.Uint32 // highest acknowledged version; 0 = none
	issued atomic.Uint32 // highest version sent (or about to be)
	maybe  atomic.Uint64 // versions of unknown outcome: lo<<32 | hi; 0 = none
}

// addMaybe widens the unknown-outcome range of k to include v. Only the
// key's writer calls it.
func (k *keyState) addMaybe(v uint32) {
	m := k.maybe.Load()
	lo, hi := uint32(m>>32), uint32(m)
	if m == 0 {
		lo, hi = v, v
	}
	if v < lo {
		lo = v
	}
	if v > hi {
		hi = v
	}
	k.maybe.Store(uint64(lo)<<32 | uint64(hi))
}

// Kinds of wrong replies, for WrongSamples.
const (
	wrongLost    = "lost"    // a miss after a set was acknowledged
	wrongStale   = "stale"   // a version older than the last acknowledged one
	wrongFuture  = "future"  // a version that was never sent
	wrongCorrupt = "corrupt" // bytes that are not the value of that key and version
	wrongForeign = "foreign" // not a value of this run after a set was acknowledged
	wrongKey     = "key"     // a value of this run written for another key
)

// verifier derives and checks values. It is shared read-only by the workers.
type verifier struct {
	runID [runIDLen]byte
	size  int
	keys  []keyState
}

// fill writes the value of key index idx (whose key bytes are key) at
// version ver into dst, which has the value size.
func (v *verifier) fill(dst []byte, key []byte, idx int, ver uint32) {
	var hdr [64]byte
	h := append(hdr[:0], v.runID[:]...)
	h = append(h, ':')
	h = appendPadded(h, uint64(ver), versionLen)
	h = append(h, ':')
	n := copy(dst, h)
	n += copy(dst[n:], key)
	if n < len(dst) {
		dst[n] = ':'
		n++
	}
	seed := uint32(idx)*7 + ver*13
	for i := n; i < len(dst); i++ {
		dst[i] = 'a' + byte((seed+uint32(i))%26)
	}
}

// check classifies a get reply of key index idx: val is the value, or nil
// with hit false for a miss; lo is the acknowledged version loaded before
// the get was sent. It reads issued and maybe now (after the reply arrived).
// scratch must have the value size. check returns "" when the reply is
// possible for a correct store.
func (v *verifier) check(key []byte, idx int, hit bool, val []byte, lo uint32, scratch []byte) string {
	ks := &v.keys[idx]
	m := ks.maybe.Load()
	mlo, mhi := uint32(m>>32), uint32(m)
	if !hit {
		if lo == 0 {
			return ""
		}
		return wrongLost
	}
	if len(val) != v.size || !bytes.Equal(val[:runIDLen], v.runID[:]) || val[runIDLen] != ':' {
		if lo == 0 {
			return "" // whatever the key held before this run's first ack
		}
		return wrongForeign
	}
	ver, ok := parseDigits(val[versionOff : versionOff+versionLen])
	if !ok {
		return wrongCorrupt
	}
	if k := val[versionOff+versionLen+1:]; val[versionOff+versionLen] == ':' &&
		!bytes.Equal(k[:min(len(k), len(key))], key[:min(len(k), len(key))]) {
		return wrongKey
	}
	hi := ks.issued.Load()
	inWindow := uint64(lo) <= ver && ver <= uint64(hi)
	inMaybe := m != 0 && uint64(mlo) <= ver && ver <= uint64(mhi)
	switch {
	case inWindow || inMaybe:
	case ver < uint64(lo):
		return wrongStale
	default:
		return wrongFuture
	}
	v.fill(scratch, key, idx, uint32(ver))
	if !bytes.Equal(val, scratch) {
		return wrongCorrupt
	}
	return ""
}

// appendPadded appends n in decimal, zero-padded to width digits.
func appendPadded(b []byte, n uint64, width int) []byte {
	var d [20]byte
	s := strconv.AppendUint(d[:0], n, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// parseDigits parses a non-empty run of decimal digits.
func parseDigits(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
