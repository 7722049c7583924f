package memtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"kumofs/proto/memcache"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var ctx = context.Background()

func get(t *testing.T, b *Backend, key string) (string, memcache.Item, error) {
	t.Helper()
	var it memcache.Item
	err := b.Get(ctx, []byte(key), nil, &it)
	return string(it.Value), it, err
}

func store(t *testing.T, b *Backend, mode memcache.StoreMode, key, val string, flags uint32, exp int64, cas uint64) (uint64, error) {
	t.Helper()
	return b.Store(ctx, mode, &memcache.Item{Key: []byte(key), Value: []byte(val), Flags: flags, Exptime: exp, CAS: cas})
}

func TestExpiry(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	b := New(c.now)
	store(t, b, memcache.ModeSet, "a", "x", 0, 1010, 0)
	store(t, b, memcache.ModeSet, "never", "x", 0, 0, 0)
	store(t, b, memcache.ModeSet, "past", "x", 0, 1, 0)
	if _, _, err := get(t, b, "past"); !errors.Is(err, memcache.ErrNotFound) {
		t.Fatalf("expired item readable: %v", err)
	}
	c.add(9 * time.Second)
	if v, _, err := get(t, b, "a"); err != nil || v != "x" {
		t.Fatalf("before expiry: %q %v", v, err)
	}
	c.add(time.Second)
	if _, _, err := get(t, b, "a"); !errors.Is(err, memcache.ErrNotFound) {
		t.Fatalf("at expiry: %v", err)
	}
	if err := b.Touch(ctx, []byte("a"), 0); !errors.Is(err, memcache.ErrNotFound) {
		t.Fatalf("touch expired: %v", err)
	}
	if _, err := store(t, b, memcache.ModeAdd, "a", "y", 0, 0, 0); err != nil {
		t.Fatalf("add over expired: %v", err)
	}
	// Touch and GetAndTouch change exptime, keep CAS.
	_, it, _ := get(t, b, "never")
	if err := b.Touch(ctx, []byte("never"), 1020); err != nil {
		t.Fatal(err)
	}
	var it2 memcache.Item
	if err := b.GetAndTouch(ctx, []byte("never"), 1030, nil, &it2); err != nil || it2.Exptime != 1030 || it2.CAS != it.CAS {
		t.Fatalf("gat: %+v %v (cas before %d)", it2, err, it.CAS)
	}
	c.add(30 * time.Second)
	if _, _, err := get(t, b, "never"); !errors.Is(err, memcache.ErrNotFound) {
		t.Fatalf("touched item should expire: %v", err)
	}
}

func TestFlushDelay(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	b := New(c.now)
	store(t, b, memcache.ModeSet, "old", "x", 0, 0, 0)
	if err := b.FlushAll(ctx, 2); err != nil {
		t.Fatal(err)
	}
	c.add(time.Second)
	store(t, b, memcache.ModeSet, "mid", "x", 0, 0, 0)
	if _, _, err := get(t, b, "old"); err != nil {
		t.Fatalf("flushed too early: %v", err)
	}
	c.add(time.Second)
	for _, k := range []string{"old", "mid"} {
		if _, _, err := get(t, b, k); !errors.Is(err, memcache.ErrNotFound) {
			t.Fatalf("%s survived the flush: %v", k, err)
		}
	}
	c.add(time.Second)
	store(t, b, memcache.ModeSet, "new", "x", 0, 0, 0)
	if _, _, err := get(t, b, "new"); err != nil {
		t.Fatalf("item stored after the flush: %v", err)
	}
	b.FlushAll(ctx, 0)
	if b.Len() != 0 {
		t.Fatal("flush_all 0 left items")
	}
}

func TestStoreModes(t *testing.T) {
	b := New(nil)
	cas1, err := store(t, b, memcache.ModeSet, "k", "b", 7, 0, 0)
	if err != nil || cas1 != 1 {
		t.Fatalf("set: %d %v", cas1, err)
	}
	if _, err := store(t, b, memcache.ModeAdd, "k", "x", 0, 0, 0); !errors.Is(err, memcache.ErrNotStored) {
		t.Fatalf("add existing: %v", err)
	}
	for _, m := range []memcache.StoreMode{memcache.ModeReplace, memcache.ModeAppend, memcache.ModePrepend} {
		if _, err := store(t, b, m, "missing", "x", 0, 0, 0); !errors.Is(err, memcache.ErrNotStored) {
			t.Fatalf("%v missing: %v", m, err)
		}
	}
	store(t, b, memcache.ModeAppend, "k", "c", 9, 99, 0)
	store(t, b, memcache.ModePrepend, "k", "a", 9, 99, 0)
	v, it, _ := get(t, b, "k")
	if v != "abc" || it.Flags != 7 || it.Exptime != 0 || it.CAS != 3 {
		t.Fatalf("append/prepend: %q %+v", v, it)
	}
	if _, err := store(t, b, memcache.ModeCAS, "k", "z", 0, 0, 2); !errors.Is(err, memcache.ErrExists) {
		t.Fatalf("stale cas: %v", err)
	}
	if _, err := store(t, b, memcache.ModeCAS, "nope", "z", 0, 0, 2); !errors.Is(err, memcache.ErrNotFound) {
		t.Fatalf("cas missing: %v", err)
	}
	if cas, err := store(t, b, memcache.ModeCAS, "k", "z", 0, 0, 3); err != nil || cas != 4 {
		t.Fatalf("cas: %d %v", cas, err)
	}
	if err := b.Delete(ctx, []byte("k"), 3); !errors.Is(err, memcache.ErrExists) {
		t.Fatalf("delete stale cas: %v", err)
	}
	if err := b.Delete(ctx, []byte("k"), 4); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := b.Delete(ctx, []byte("k"), 0); !errors.Is(err, memcache.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestIncr(t *testing.T) {
	b := New(nil)
	incr := func(key string, d uint64, decr bool, create *memcache.Item) (uint64, error) {
		v, _, err := b.Incr(ctx, []byte(key), d, decr, create)
		return v, err
	}
	if _, err := incr("n", 1, false, nil); !errors.Is(err, memcache.ErrNotFound) {
		t.Fatal(err)
	}
	if v, err := incr("n", 5, false, &memcache.Item{Value: []byte("10"), Flags: 3}); v != 10 || err != nil {
		t.Fatalf("create: %d %v", v, err)
	}
	if v, _ := incr("n", 5, false, nil); v != 15 {
		t.Fatalf("incr: %d", v)
	}
	if v, _ := incr("n", 100, true, nil); v != 0 {
		t.Fatalf("decr floor: %d", v)
	}
	store(t, b, memcache.ModeSet, "w", "18446744073709551615", 0, 0, 0)
	if v, _ := incr("w", 2, false, nil); v != 1 {
		t.Fatalf("wrap: %d", v)
	}
	store(t, b, memcache.ModeSet, "sp", " 12 \r\n", 0, 0, 0)
	if v, err := incr("sp", 1, false, nil); v != 13 || err != nil {
		t.Fatalf("spaces: %d %v", v, err)
	}
	store(t, b, memcache.ModeSet, "tail", "42 abc", 0, 0, 0) // memcached: 42, the rest ignored
	if v, err := incr("tail", 1, false, nil); v != 43 || err != nil {
		t.Fatalf("trailing text: %d %v", v, err)
	}
	if v, _, _ := get(t, b, "tail"); v != "43    " {
		t.Fatalf("counter rewritten over text: %q, want the number padded to the old length", v)
	}
	for _, bad := range []string{"", "abc", "1a", "-1", "99999999999999999999999", "42abc"} {
		store(t, b, memcache.ModeSet, "s", bad, 0, 0, 0)
		if _, err := incr("s", 1, false, nil); !errors.Is(err, memcache.ErrNonNumeric) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
	if v, it, _ := get(t, b, "n"); v != "0 " || it.Flags != 3 { // padded as memcached's rewrite in place
		t.Fatalf("stored counter %q %+v", v, it)
	}
}

func TestStatsFields(t *testing.T) {
	b := New(nil)
	store(t, b, memcache.ModeSet, "k", "vv", 0, 0, 0)
	got := map[string]string{}
	b.Stats(ctx, func(n, v string) { got[n] = v })
	if got["curr_items"] != "1" || got["total_items"] != "1" || got["bytes"] != "3" {
		t.Fatalf("stats %v", got)
	}
}
