// Package memtest holds an in-memory memcache.Backend with the reference
// semantics the cluster gateway must match, plus test helpers that run
// external compatibility checks (memccapable) against any server address.
package memtest

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"time"

	"kumofs/proto/memcache"
)

// Backend is an in-memory memcache.Backend guarded by one mutex. The zero
// value is ready to use.
type Backend struct {
	// Clock, if set, replaces time.Now (for expiry tests). Set it before use.
	Clock func() time.Time
	// MaxItemSize, if set, is the item size limit (memcached's -I, as
	// memcache.ItemSize counts) an append or prepend must stay within
	// (memcache.ErrNotStored). Set it before use, like the server's.
	MaxItemSize int

	// mu protects all fields below. No other lock is taken while it is
	// held, and Clock is called under it.
	mu         sync.Mutex
	items      map[string]*entry
	lastCAS    uint64
	flushAt    int64 // unix nanos of a pending delayed flush_all; 0 = none
	totalItems uint64
	bytes      int64
}

type entry struct {
	value   []byte
	flags   uint32
	exptime int64 // absolute unix seconds; 0 = never
	cas     uint64
	mtime   int64 // unix nanos of the last store
	stale   bool  // memcache.Item.Stale
	token   bool  // memcache.Item.TokenSent
	fetched bool  // read since stored (mg h)
	atime   int64 // unix seconds of the last read or store (mg l)
}

var (
	_ memcache.Backend       = (*Backend)(nil)
	_ memcache.ArithBackend  = (*Backend)(nil)
	_ memcache.LeaseBackend  = (*Backend)(nil)
	_ memcache.AccessBackend = (*Backend)(nil)
)

// New returns an empty Backend using clock (nil = time.Now).
func New(clock func() time.Time) *Backend { return &Backend{Clock: clock} }

func (b *Backend) now() time.Time {
	if b.Clock != nil {
		return b.Clock()
	}
	return time.Now()
}

// lookup returns the live entry for key, dropping it if expired or flushed.
// b.mu must be held.
func (b *Backend) lookup(key []byte, now time.Time) *entry {
	if b.flushAt != 0 && now.UnixNano() >= b.flushAt {
		for k, e := range b.items {
			if e.mtime <= b.flushAt {
				b.remove(k, e)
			}
		}
		b.flushAt = 0
	}
	e, ok := b.items[string(key)]
	if !ok {
		return nil
	}
	if e.exptime != 0 && e.exptime <= now.Unix() {
		b.remove(string(key), e)
		return nil
	}
	return e
}

func (b *Backend) remove(key string, e *entry) {
	b.bytes -= int64(len(key) + len(e.value))
	delete(b.items, key)
}

func (b *Backend) nextCAS() uint64 {
	b.lastCAS++
	return b.lastCAS
}

// setValue replaces e's value, reusing its array when it fits.
func (b *Backend) setValue(e *entry, v []byte) {
	b.bytes += int64(len(v) - len(e.value))
	if cap(e.value) >= len(v) {
		e.value = append(e.value[:0], v...)
	} else {
		e.value = append([]byte(nil), v...)
	}
}

// Get implements memcache.Backend.
func (b *Backend) Get(ctx context.Context, key, dst []byte, it *memcache.Item) error {
	_, _, err := b.GetAccess(ctx, key, true, dst, it)
	return err
}

// GetAccess implements memcache.AccessBackend.
func (b *Backend) GetAccess(ctx context.Context, key []byte, bump bool, dst []byte, it *memcache.Item) (bool, int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	e := b.lookup(key, now)
	if e == nil {
		return false, 0, memcache.ErrNotFound
	}
	b.fill(e, dst, it)
	fetched, last := e.fetched, e.atime
	if bump {
		e.fetched, e.atime = true, now.Unix()
	}
	return fetched, last, nil
}

func (b *Backend) fill(e *entry, dst []byte, it *memcache.Item) {
	it.Value = append(dst, e.value...)
	it.Flags = e.flags
	it.Exptime = e.exptime
	it.CAS = e.cas
	it.Stale, it.TokenSent = e.stale, e.token
}

// GetAndTouch implements memcache.Backend.
func (b *Backend) GetAndTouch(ctx context.Context, key []byte, exptime int64, dst []byte, it *memcache.Item) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.lookup(key, b.now())
	if e == nil {
		return memcache.ErrNotFound
	}
	e.exptime = exptime
	e.fetched, e.atime = true, b.now().Unix()
	b.fill(e, dst, it)
	return nil
}

// Store implements memcache.Backend.
func (b *Backend) Store(ctx context.Context, mode memcache.StoreMode, it *memcache.Item) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	e := b.lookup(it.Key, now)
	switch mode {
	case memcache.ModeAdd:
		if e != nil {
			return 0, memcache.ErrNotStored
		}
	case memcache.ModeReplace, memcache.ModeAppend, memcache.ModePrepend:
		if e == nil {
			return 0, memcache.ErrNotStored
		}
	}
	stale, token := false, false
	if it.CAS != 0 || mode == memcache.ModeCAS {
		if e == nil {
			return 0, memcache.ErrNotFound
		}
		if e.cas != it.CAS {
			if mode != memcache.ModeCAS || !it.Stale || it.CAS > e.cas {
				return 0, memcache.ErrExists
			}
			// ms I against an older CAS unique: stored stale, keeping
			// the exptime and the token.
			stale, token = true, e.token
		}
	}
	if mode == memcache.ModeAdd {
		token = it.TokenSent
	}
	if (mode == memcache.ModeAppend || mode == memcache.ModePrepend) && b.MaxItemSize > 0 &&
		memcache.ItemSize(len(it.Key), int64(len(e.value)+len(it.Value)), e.flags) > int64(b.MaxItemSize) {
		return 0, memcache.ErrNotStored // memcached cannot allocate the longer item
	}
	switch mode {
	case memcache.ModeAppend:
		b.bytes += int64(len(it.Value))
		e.value = append(e.value, it.Value...)
	case memcache.ModePrepend:
		b.bytes += int64(len(it.Value))
		v := make([]byte, 0, len(e.value)+len(it.Value))
		e.value = append(append(v, it.Value...), e.value...)
	default:
		if e == nil {
			if b.items == nil {
				b.items = make(map[string]*entry)
			}
			e = &entry{}
			b.items[string(it.Key)] = e
			b.bytes += int64(len(it.Key))
		}
		b.setValue(e, it.Value)
		e.flags = it.Flags
		if !stale {
			e.exptime = it.Exptime
		}
	}
	e.stale, e.token = stale, token
	e.fetched, e.atime = false, now.Unix()
	b.totalItems++
	e.mtime = now.UnixNano()
	if it.NewCAS != 0 {
		e.cas = it.NewCAS
	} else {
		e.cas = b.nextCAS()
	}
	return e.cas, nil
}

// Win implements memcache.LeaseBackend. The CAS unique is kept, as in
// memcached.
func (b *Backend) Win(ctx context.Context, key []byte, cas uint64) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.lookup(key, b.now())
	switch {
	case e == nil:
		return 0, memcache.ErrNotFound
	case e.cas != cas || e.token:
		return 0, memcache.ErrExists
	}
	e.token = true
	return e.cas, nil
}

// Invalidate implements memcache.LeaseBackend.
func (b *Backend) Invalidate(ctx context.Context, key []byte, cas uint64, touch bool, exptime int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.lookup(key, b.now())
	switch {
	case e == nil:
		return memcache.ErrNotFound
	case cas != 0 && e.cas != cas:
		return memcache.ErrExists
	}
	e.stale, e.token = true, false
	if touch {
		e.exptime = exptime
	}
	e.cas = b.nextCAS()
	return nil
}

// Delete implements memcache.Backend.
func (b *Backend) Delete(ctx context.Context, key []byte, cas uint64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.lookup(key, b.now())
	if e == nil {
		return memcache.ErrNotFound
	}
	if cas != 0 && cas != e.cas {
		return memcache.ErrExists
	}
	b.remove(string(key), e)
	return nil
}

// parseNumber parses a stored counter as memcached's safe_strtoull does
// on the item's data as a C string: the value ends at its first NUL; then
// leading white space, an optional sign, digits, then white space or the
// end; what follows the first white space is ignored ("42 abc" is 42). A
// '-' negates the number as strtoull does and is refused only where that
// makes it negative as a signed number ("-0" is 0, "-5" is refused).
func parseNumber(v []byte) (uint64, bool) {
	if n := bytes.IndexByte(v, 0); n >= 0 {
		v = v[:n]
	}
	space := func(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }
	i := 0
	for i < len(v) && space(v[i]) {
		i++
	}
	neg := false
	if i < len(v) && (v[i] == '+' || v[i] == '-') {
		neg = v[i] == '-'
		i++
	}
	j := i
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	if j == i || (j < len(v) && !space(v[j])) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(v[i:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		if n = -n; int64(n) < 0 {
			return 0, false
		}
	}
	return n, true
}

// Incr implements memcache.Backend.
func (b *Backend) Incr(ctx context.Context, key []byte, delta uint64, decr bool, create *memcache.Item) (uint64, uint64, error) {
	var r memcache.ArithResult
	err := b.Arith(ctx, key, &memcache.Arith{Delta: delta, Decr: decr, Create: create}, &r)
	return r.Value, r.CAS, err
}

// Arith implements memcache.ArithBackend.
func (b *Backend) Arith(ctx context.Context, key []byte, a *memcache.Arith, r *memcache.ArithResult) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	e := b.lookup(key, now)
	if e == nil {
		if a.Create == nil {
			return memcache.ErrNotFound
		}
		v, ok := parseNumber(a.Create.Value)
		if !ok {
			return memcache.ErrNonNumeric
		}
		if b.items == nil {
			b.items = make(map[string]*entry)
		}
		e = &entry{flags: a.Create.Flags, exptime: a.Create.Exptime, mtime: now.UnixNano(), cas: b.nextCAS()}
		b.items[string(key)] = e
		b.bytes += int64(len(key))
		b.setValue(e, a.Create.Value)
		b.totalItems++
		*r = memcache.ArithResult{Value: v, CAS: e.cas, Created: true}
		return nil
	}
	if len(e.value) == 0 {
		return memcache.ErrNonNumeric // before the CAS compare, as memcached
	}
	if a.CAS != 0 && a.CAS != e.cas {
		return memcache.ErrExists
	}
	v, ok := parseNumber(e.value)
	if !ok {
		return memcache.ErrNonNumeric
	}
	if a.Decr {
		if a.Delta > v {
			v = 0
		} else {
			v -= a.Delta
		}
	} else {
		v += a.Delta // wraps at 2^64 like memcached
	}
	nv := memcache.AppendCounter(nil, v, len(e.value))
	if len(nv) > len(e.value) {
		// memcached rewrites a counter in place (keeping the lease
		// state) only when the new number fits in the old bytes.
		e.stale, e.token = false, false
	}
	b.setValue(e, nv)
	e.mtime = now.UnixNano()
	e.cas = b.nextCAS()
	*r = memcache.ArithResult{Value: v, CAS: e.cas, OldExptime: e.exptime}
	if a.Touch {
		e.exptime = a.Exptime
	}
	return nil
}

// SetsCAS implements memcache.CASSetter: a store takes Item.NewCAS.
func (b *Backend) SetsCAS() {}

// Touch implements memcache.Backend.
func (b *Backend) Touch(ctx context.Context, key []byte, exptime int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.lookup(key, b.now())
	if e == nil {
		return memcache.ErrNotFound
	}
	e.exptime = exptime
	e.fetched, e.atime = true, b.now().Unix() // memcached's touch reads the item
	return nil
}

// FlushAll implements memcache.Backend.
func (b *Backend) FlushAll(ctx context.Context, delay int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if delay <= 0 {
		b.items = nil
		b.bytes = 0
		b.flushAt = 0
		return nil
	}
	b.flushAt = b.now().UnixNano() + delay*int64(time.Second)
	return nil
}

// Stats implements memcache.Backend.
func (b *Backend) Stats(ctx context.Context, add func(name, value string)) error {
	b.mu.Lock()
	n, total, bytes := len(b.items), b.totalItems, b.bytes
	b.mu.Unlock()
	add("curr_items", strconv.Itoa(n))
	add("total_items", strconv.FormatUint(total, 10))
	add("bytes", strconv.FormatInt(bytes, 10))
	add("limit_maxbytes", "0")
	return nil
}

// Len returns the number of stored (possibly expired) items.
func (b *Backend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}
