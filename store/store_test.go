package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

func init() {
	// The race detector does not see mmap'd memory (FORMAT.md); keep the
	// slot table on the heap in tests unless a test says otherwise.
	heapSlots = true
}

// fastTempDir returns a temporary directory on tmpfs (/dev/shm) when
// there is one, for tests that reopen files hundreds of times and do not
// test the disk itself: fdatasync there is free. Crashes are simulated
// at the process level, so the page cache is all that matters.
func fastTempDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "kumo-store-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

func tempDB(t testing.TB, opt *Options) (*DB, string) {
	t.Helper()
	path := filepath.Join(fastTempDir(t), "t.kch")
	if opt == nil {
		opt = &Options{Sync: SyncNone, Buckets: 1024}
	}
	db, err := Open(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	return db, path
}

func key(i int) []byte { return []byte(fmt.Sprintf("%08d", i)) }

func mustGet(t testing.TB, db *DB, k string) Record {
	t.Helper()
	rec, _, err := db.Get([]byte(k), nil)
	if err != nil {
		t.Fatalf("Get(%q): %v", k, err)
	}
	return rec
}

// Ensure that put, get, overwrite, delete and tombstones round-trip and
// survive a reopen.
func TestBasic(t *testing.T) {
	db, path := tempDB(t, nil)
	if _, _, err := db.Get([]byte("a"), nil); err != ErrNotFound {
		t.Fatalf("Get missing: %v", err)
	}
	in := Record{Key: []byte("a"), Value: []byte("one"), Clock: 7 << 32, Flags: 9, Exptime: 123}
	if err := db.Put(&in); err != nil {
		t.Fatal(err)
	}
	rec := mustGet(t, db, "a")
	if string(rec.Key) != "a" || string(rec.Value) != "one" || rec.Clock != 7<<32 || rec.Flags != 9 || rec.Exptime != 123 || rec.Tombstone {
		t.Fatalf("got %+v", rec)
	}
	if err := db.Put(&Record{Key: []byte("a"), Value: []byte("two")}); err != nil {
		t.Fatal(err)
	}
	if err := db.Put(&Record{Key: []byte("t"), Clock: 5, Tombstone: true}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, db, "t"); !got.Tombstone || got.Clock != 5 || len(got.Value) != 0 {
		t.Fatalf("tombstone: %+v", got)
	}
	if err := db.Put(&Record{Key: []byte("e")}); err != nil {
		t.Fatal(err)
	}
	ok, err := db.Delete([]byte("e"), nil)
	if !ok || err != nil {
		t.Fatalf("Delete: %v %v", ok, err)
	}
	if ok, err := db.Delete([]byte("e"), nil); ok || err != nil {
		t.Fatalf("Delete again: %v %v", ok, err)
	}
	if db.Len() != 2 {
		t.Fatalf("Len = %d, want 2", db.Len())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != ErrClosed {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := db.Get([]byte("a"), nil); err != ErrClosed {
		t.Fatalf("Get after Close: %v", err)
	}
	db, err = Open(path, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := mustGet(t, db, "a"); string(got.Value) != "two" {
		t.Fatalf("after reopen: %q", got.Value)
	}
	if _, _, err := db.Get([]byte("e"), nil); err != ErrNotFound {
		t.Fatalf("deleted key: %v", err)
	}
	if db.Len() != 2 {
		t.Fatalf("Len after reopen = %d", db.Len())
	}
}

// Ensure that a second open of a held file fails at once with ErrLocked.
func TestLocked(t *testing.T) {
	db, path := tempDB(t, nil)
	defer db.Close()
	if _, err := Open(path, nil); err != ErrLocked || err.Error() != "store: locked" {
		t.Fatalf("second Open: %v", err)
	}
}

// Ensure that Update runs the predicate on the current record and stores
// only when it says so, and that Delete honours its predicate.
func TestUpdatePredicate(t *testing.T) {
	db, _ := tempDB(t, nil)
	defer db.Close()
	newer := func(c uint64) func(*Record) bool {
		return func(old *Record) bool { return old == nil || old.Clock < c }
	}
	for _, tc := range []struct {
		clock uint64
		want  bool
	}{{10, true}, {5, false}, {10, false}, {11, true}} {
		ok, err := db.Update(&Record{Key: []byte("k"), Value: []byte(fmt.Sprint(tc.clock)), Clock: tc.clock}, newer(tc.clock))
		if err != nil || ok != tc.want {
			t.Fatalf("Update clock %d = %v, %v; want %v", tc.clock, ok, err, tc.want)
		}
	}
	if got := mustGet(t, db, "k"); got.Clock != 11 || string(got.Value) != "11" {
		t.Fatalf("got %+v", got)
	}
	ok, err := db.Delete([]byte("k"), func(old *Record) bool { return old.Clock == 3 })
	if ok || err != nil {
		t.Fatalf("Delete with false pred: %v %v", ok, err)
	}
	ok, err = db.Delete([]byte("k"), func(old *Record) bool { return old.Clock == 11 })
	if !ok || err != nil {
		t.Fatalf("Delete with true pred: %v %v", ok, err)
	}
}

// Ensure that Get reuses the caller's buffer and allocates nothing.
func TestGetNoAlloc(t *testing.T) {
	db, _ := tempDB(t, nil)
	defer db.Close()
	db.Put(&Record{Key: []byte("key"), Value: bytes.Repeat([]byte("v"), 1000)})
	buf := make([]byte, 0, 2048)
	n := testing.AllocsPerRun(100, func() {
		rec, b, err := db.Get([]byte("key"), buf)
		if err != nil || len(rec.Value) != 1000 {
			t.Fatal(err)
		}
		buf = b
	})
	if n != 0 {
		t.Fatalf("Get allocates %v times", n)
	}
}

// Ensure that readers and writers run concurrently without races (the
// slot table is heap-backed in tests so -race sees it).
func TestConcurrent(t *testing.T) {
	db, _ := tempDB(t, &Options{Sync: SyncAlways, SyncInterval: time.Millisecond, Buckets: 4096})
	defer db.Close()
	const writers, n = 4, 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				k := key(w*n + i)
				if err := db.Put(&Record{Key: k, Value: k, Clock: uint64(i)}); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					db.Delete(key(w*n+i/2), nil)
				}
			}
		}(w)
	}
	var rg sync.WaitGroup
	for r := 0; r < 2; r++ {
		rg.Add(1)
		go func() {
			defer rg.Done()
			var buf []byte
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := key(i % (writers * n))
				rec, b, err := db.Get(k, buf)
				buf = b
				if err == nil && !bytes.Equal(rec.Value, k) {
					t.Errorf("Get %s = %s", k, rec.Value)
					return
				} else if err != nil && err != ErrNotFound {
					t.Error(err)
					return
				}
				if i%500 == 0 {
					db.ForEach(func(rec *Record) error { return nil })
				}
			}
		}()
	}
	var cg sync.WaitGroup
	cg.Add(1)
	backup := filepath.Join(t.TempDir(), "backup.kch")
	go func() {
		defer cg.Done()
		for i := 0; i < 3; i++ {
			if err := db.Compact(CompactOptions{}); err != nil {
				t.Error(err)
			}
			if err := db.Backup(backup); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	close(stop)
	rg.Wait()
	cg.Wait()
	b, err := Open(backup, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(backup); err != ErrLocked {
		t.Fatalf("Verify of an open backup: %v", err)
	}
	b.Close()
	if _, err := Verify(backup); err != nil {
		t.Fatalf("Verify backup: %v", err)
	}
	for w := 0; w < writers; w++ {
		for i := n / 2; i < n; i++ {
			if got := mustGet(t, db, string(key(w*n+i))); !bytes.Equal(got.Value, key(w*n+i)) {
				t.Fatalf("final %d: %q", w*n+i, got.Value)
			}
		}
	}
}

// Ensure that ForEach sees every key not touched during the scan exactly
// once, in log order, while writers run.
func TestForEachWhileWriting(t *testing.T) {
	db, _ := tempDB(t, &Options{Sync: SyncNone, Buckets: 4096})
	defer db.Close()
	const n = 500
	for i := 0; i < n; i++ {
		db.Put(&Record{Key: key(i), Value: val(i)})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := n; i < 2*n; i++ {
			db.Put(&Record{Key: key(i), Value: val(i)})
		}
	}()
	seen := map[string]int{}
	prev := ""
	err := db.ForEach(func(r *Record) error {
		k := string(r.Key)
		seen[k]++
		if k < string(key(n)) && k <= prev {
			return fmt.Errorf("out of log order: %s after %s", k, prev)
		}
		if k < string(key(n)) {
			prev = k
		}
		if !bytes.Equal(r.Value, val(mustAtoi(t, k))) {
			return fmt.Errorf("%s = %q", k, r.Value)
		}
		return nil
	})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if seen[string(key(i))] != 1 {
			t.Fatalf("key %d seen %d times", i, seen[string(key(i))])
		}
	}
	for k, c := range seen {
		if c != 1 {
			t.Fatalf("%s seen %d times", k, c)
		}
	}
}

func mustAtoi(t testing.TB, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	os.Exit(m.Run())
}
