// Package memcache is the memcached 1.6 front end of kumo: parsers and reply
// writers for the text protocol, the meta commands and the binary protocol,
// over a Backend interface that owns the data.
//
// A Server accepts connections, detects the protocol from the first byte
// (0x80 = binary, as memcached does) and serves requests strictly in order:
// replies of pipelined requests are buffered and written when the input is
// drained, noreply and quiet requests send nothing and still keep order.
//
// The Backend decides every read-modify-write (add, replace, append,
// prepend, cas, incr, decr, touch, gat) in a single call, so a cluster can
// decide it atomically on the key's coordinator. Package memtest holds an
// in-memory Backend with the reference semantics.
//
// Behaviour follows memcached 1.6.18 (checked against its replies in
// testdata/memcached-1.6.18-golden.md, by experiment, and by the
// transcripts of compat_test.go, which `go test -memcached` replays
// against a real memcached), including its error lines, how it reads
// numbers (C's strtoull/strtol: "+5" and "-0" are numbers, exptimes and
// lengths keep the low 32 bits) and when the connection stays open.
// Limits: keys of 1-250 bytes (the text parser, like memcached, accepts
// any byte but space, \r and \n); items up to MaxItemSize counting value + key + 48 bytes, as
// memcached's -I does, so a value of exactly 1 MiB is refused with
// "SERVER_ERROR object too large for cache" and its data swallowed.
// Per-connection memory is bounded: a 16 KiB read buffer (a command line
// without newline beyond it gets "CLIENT_ERROR line too long" and the
// connection is closed; get/gets/gat/gats lines may grow to 256 KiB), a
// 16 KiB write buffer and one value buffer, all pooled by size class; with
// an AsyncBackend also one reply buffer and, during a multi-key get, up to
// 16 value buffers.
// A data length that is negative as an int32 is a command-line error; too
// large binary storage bodies get status 0x03 and are swallowed (any
// length, as in memcached); other opcodes with too large bodies get status
// 0x04 and the connection is closed.
//
// Deliberate differences from memcached:
//   - the version string is DefaultVersion, "1.6.18-kumo".
//   - a command line longer than the read buffer gets an error line before
//     the close (memcached closes silently beyond 2048 bytes).
//   - meta: h and l need an AccessBackend (else they report 0). Stale items and recache wins (md I,
//     mg R, ms I with C; X and Z) need a LeaseBackend; without one those
//     flags are refused as memcached refuses a flag it lacks, and W comes
//     only with an mg N autovivify. A backend may give an item a new CAS
//     unique when mg hands out its win token (memcached keeps it). E
//     (explicit new CAS, as in later 1.6 releases; 1.6.18 rejects it) is
//     supported on ms and mg N only.
//   - memcached 1.6.18 loses an ma T when a reply still being written
//     holds the item (an mg of that key earlier in the same batch); here
//     T always applies.
//   - an O token over 31 bytes is refused before anything is done;
//     memcached does mg's touch or autovivify and ma's arithmetic first.
//   - a Backend may give a touched item a new CAS unique where memcached
//     keeps it (see GetAndTouch); kumo's cluster gateway does, because its
//     CAS unique is the record's replication clock.
//   - stats lists our own counters, not memcached's slab/LRU internals;
//     stats settings/items/slabs/sizes/conns are (nearly) empty.
package memcache

import (
	"context"
	"errors"
	"strconv"
)

// Errors a Backend returns. Any other error becomes SERVER_ERROR <msg> in the
// text protocol and status 0x84 (internal error) in the binary protocol; the
// connection stays usable.
var (
	// ErrNotFound: the key does not exist (or has expired).
	ErrNotFound = errors.New("memcache: not found")
	// ErrNotStored: add on an existing key, replace/append/prepend on a
	// missing key.
	ErrNotStored = errors.New("memcache: not stored")
	// ErrExists: the CAS unique given does not match the item's.
	ErrExists = errors.New("memcache: exists")
	// ErrNonNumeric: incr/decr on a value that is not a decimal number.
	ErrNonNumeric = errors.New("memcache: non-numeric value")
	// ErrTooLarge: the backend refuses the item because of its size.
	ErrTooLarge = errors.New("memcache: object too large")
	// ErrNoMemory: the backend has no room to store the item (memcached's
	// "SERVER_ERROR out of memory storing object", binary status 0x82).
	ErrNoMemory = errors.New("memcache: out of memory storing object")
	// ErrMaybeApplied wraps the error of an asynchronous write that may
	// have taken effect although it failed (the answer was lost): a delete
	// served again that then finds no key reports it deleted.
	ErrMaybeApplied = errors.New("memcache: write may have been applied")
)

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("memcache: server closed")

// Item is what a read returns and a write carries.
type Item struct {
	Key   []byte
	Value []byte
	Flags uint32
	// Exptime is absolute unix seconds; 0 = never. The front end normalises
	// what clients send: 0 stays 0, 1..2592000 (30 days) is relative (now+n),
	// larger values are absolute unix times (kept as is, so a past time is
	// already expired), negative values become 1 (expired at once).
	Exptime int64
	// CAS is the CAS unique. On Store a non-zero CAS makes the store
	// conditional: it only happens if the existing item has this unique
	// (ErrNotFound if there is none, ErrExists if it differs), checked
	// after the mode's own condition (ErrNotStored for add on an existing
	// item, replace, append or prepend on a missing one).
	CAS uint64
	// NewCAS, on Store, is the CAS unique to give the stored item (the
	// meta E flag, for clients that keep uniques in step across pools);
	// 0 = the backend picks the next one. Only a CASSetter is given one.
	NewCAS uint64

	// Lease state (memcached's meta commands, with a LeaseBackend; other
	// backends leave both false). A read reports it. On Store, TokenSent
	// with ModeAdd creates the item with its win token out (mg N), and
	// Stale with ModeCAS lets a compare against an older CAS unique store
	// the value marked stale, keeping the item's exptime and token (ms I
	// C); any other store leaves an item with neither.
	Stale     bool // marked stale (md I, ms I): mg reports X
	TokenSent bool // a win token (mg W) is out: mg reports Z
}

// StoreMode selects what Store does.
type StoreMode uint8

// Store modes.
const (
	ModeSet     StoreMode = iota // store unconditionally
	ModeAdd                      // store only if missing, else ErrNotStored
	ModeReplace                  // store only if present, else ErrNotStored
	ModeAppend                   // append to the value (keep flags, exptime), else ErrNotStored
	ModePrepend                  // prepend to the value (keep flags, exptime), else ErrNotStored
	ModeCAS                      // ModeSet with a required CAS compare (it.CAS)
)

var modeNames = [...]string{"set", "add", "replace", "append", "prepend", "cas"}

func (m StoreMode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "mode?"
}

// Backend owns the data. All methods are called concurrently from many
// connections. Keys and values passed in are only valid during the call.
type Backend interface {
	// Get appends the value to dst and returns it in it.Value (aliasing
	// dst's array when it fits), with Flags, Exptime and CAS. ErrNotFound if
	// missing. The CAS unique is one a later cas can rely on (see
	// AsyncBackend.GetAsync's withCAS).
	Get(ctx context.Context, key []byte, dst []byte, it *Item) error
	// GetAndTouch is Get that also sets the item's exptime (absolute, 0 =
	// never) in the same step. memcached keeps the CAS unique (so does
	// memtest); a backend whose CAS unique is its version stamp may give
	// the item a new one, and says so.
	GetAndTouch(ctx context.Context, key []byte, exptime int64, dst []byte, it *Item) error
	// Store writes it according to mode and returns the new CAS unique.
	// Errors: ErrNotStored, ErrExists, ErrNotFound (CAS on a missing key).
	Store(ctx context.Context, mode StoreMode, it *Item) (cas uint64, err error)
	// Delete removes key; cas != 0 makes it conditional (ErrExists).
	// ErrNotFound if missing.
	Delete(ctx context.Context, key []byte, cas uint64) error
	// Incr adds delta to (or, with decr, subtracts it from) the decimal
	// value of key: 64-bit wrap on incr, floor 0 on decr. The stored value is
	// read as memcached does (leading white space, digits, then white space
	// or the end, the rest ignored: "42 abc" is 42); the new value is
	// stored as AppendCounter makes it (padded with spaces to the old
	// length, as memcached's rewrite in place), flags and exptime kept.
	// If the key is missing and create is nil: ErrNotFound; otherwise create
	// (Value = the initial decimal number, Flags, Exptime) is stored as is
	// and its number returned, without applying delta. ErrNonNumeric if the
	// value is not a number.
	Incr(ctx context.Context, key []byte, delta uint64, decr bool, create *Item) (val uint64, cas uint64, err error)
	// Touch sets the exptime of key (absolute, 0 = never). ErrNotFound.
	// The CAS unique is kept or renewed as with GetAndTouch.
	Touch(ctx context.Context, key []byte, exptime int64) error
	// FlushAll invalidates every item that exists when delay seconds have
	// passed (0 = now). Items stored after that moment survive.
	FlushAll(ctx context.Context, delay int64) error
	// Stats reports data statistics (curr_items, bytes, total_items, ...)
	// by calling add for each, in order.
	Stats(ctx context.Context, add func(name, value string)) error
}

// Arith is an incr/decr with the options of the meta command ma and of
// the binary protocol's increment and decrement.
type Arith struct {
	Delta uint64
	Decr  bool
	// Create, if not nil, is stored when the key is missing (Value = the
	// initial decimal number, Flags, Exptime), as Backend.Incr's create.
	Create *Item
	// CAS, if not 0, makes the update of an existing item conditional:
	// ErrExists if its CAS unique differs. It does not stop Create.
	CAS uint64
	// Touch sets an existing item's exptime to Exptime (absolute, 0 =
	// never) in the same step. A created item gets Create.Exptime.
	Touch   bool
	Exptime int64
}

// ArithResult is what an Arith did.
type ArithResult struct {
	Value uint64 // the new number
	CAS   uint64 // the item's new CAS unique
	// Created is true if Create was stored (no delta applied).
	Created bool
	// OldExptime is the exptime the item had before the call (absolute,
	// 0 = never; 0 if Created). ma reports TTLs in flag order, so a t
	// before T shows it.
	OldExptime int64
}

// LeaseBackend is an optional interface of a Backend for the leases of the
// meta commands (memcached's recache and stale-while-revalidate: mg R, W,
// X and Z, md I, ms I). Without it those flags are refused as memcached
// refuses a flag it does not know, and mg hands out W only on an N
// autovivify.
type LeaseBackend interface {
	// Win hands out key's win token: if the item still has CAS unique
	// cas and no token out, it is marked TokenSent and its CAS unique
	// returned (a backend may give it a new one, as with GetAndTouch).
	// ErrExists if the item changed or its token is out (possibly as a
	// *LeaseLostError that says which), ErrNotFound.
	Win(ctx context.Context, key []byte, cas uint64) (uint64, error)
	// Invalidate marks key stale and takes its token back (md I), with a
	// new CAS unique; cas != 0 makes it conditional (ErrExists), touch
	// sets its exptime (absolute, 0 = never). ErrNotFound.
	Invalidate(ctx context.Context, key []byte, cas uint64, touch bool, exptime int64) error
}

// LeaseLostError is an ErrExists from LeaseBackend.Win that also tells
// what the item it lost to is like now: a backend whose reads may lag its
// writes (a replica that has not stored the win yet) says so, rather than
// let the caller read the version it already tried again.
type LeaseLostError struct {
	CAS       uint64 // the item's CAS unique now
	TokenSent bool   // its win token is out: another client won
}

func (e *LeaseLostError) Error() string { return "memcache: lease lost (exists)" }

// Is reports that a LeaseLostError is an ErrExists.
func (e *LeaseLostError) Is(target error) bool { return target == ErrExists }

// CASSetter is an optional interface of a Backend that stores an item with
// the CAS unique a client chose (Item.NewCAS: memcached's meta E flag).
// Without it the server refuses E as memcached 1.6.18 does ("invalid
// flag"), rather than store with a unique the client did not ask for.
type CASSetter interface {
	SetsCAS()
}

// AccessBackend is an optional interface of a Backend that knows when its
// items are read, for the mg flags h (hit before) and l (seconds since the
// last access). Without it both report 0.
type AccessBackend interface {
	// GetAccess is Get that also reports whether the item was read
	// before and when it was last accessed (unix seconds: read, or else
	// stored), as of before this call. The read counts unless bump is
	// false (mg u).
	GetAccess(ctx context.Context, key []byte, bump bool, dst []byte, it *Item) (fetched bool, last int64, err error)
}

// ArithBackend is an optional interface of a Backend that decides an
// Arith in one step. Without it the server calls Incr where that is
// enough; it answers ma with C, T or t as memcached answers a flag it does
// not know ("CLIENT_ERROR invalid or duplicate flag"), and a binary
// incr/decr that carries a CAS with status 0x84 (internal error).
type ArithBackend interface {
	// Arith applies a to key as Backend.Incr does, with the compare and
	// the exptime update of a, and fills r. Errors as Incr, plus ErrExists.
	Arith(ctx context.Context, key []byte, a *Arith, r *ArithResult) error
}

// AppendCounter appends the value incr or decr stores for the number v
// in place of a value oldLen bytes long: the decimal number, padded with
// spaces to oldLen when it is not longer, as memcached rewrites a counter
// in place ("10" decremented by 1 reads back as "9 "); a longer number
// replaces the value.
func AppendCounter(b []byte, v uint64, oldLen int) []byte {
	start := len(b)
	b = strconv.AppendUint(b, v, 10)
	n := oldLen - (len(b) - start)
	if n <= 0 {
		return b
	}
	if cap(b)-len(b) < n {
		b = append(make([]byte, 0, len(b)+n), b...)
	}
	b = b[:len(b)+n]
	pad := b[len(b)-n:]
	for i := range pad {
		pad[i] = ' '
	}
	return b
}
