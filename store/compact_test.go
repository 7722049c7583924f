package store

import (
	"bytes"
	"errors"
	"math/rand"
	"sync"
	"testing"
)

// Ensure that Compact reads only the live records: a damaged version that
// a later write replaced does not stop it, and a damaged live record does.
func TestCompactReadsLiveRecordsOnly(t *testing.T) {
	db, _ := tempDB(t, &Options{Sync: SyncNone, Buckets: 1024})
	defer db.Close()
	k := []byte("k")
	first := db.cur.Load().logStart
	for i := 0; i < 100; i++ {
		if err := db.Put(&Record{Key: k, Value: bytes.Repeat([]byte{byte('a' + i%26)}, 300), Clock: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	db.cur.Load().m[first+recHdrSize+1] ^= 0xff // a value byte of the first, dead, version
	if err := db.Compact(CompactOptions{}); err != nil {
		t.Fatalf("Compact with a damaged dead record: %v", err)
	}
	if got := mustGet(t, db, "k"); got.Clock != 100 || !bytes.Equal(got.Value, bytes.Repeat([]byte{'a' + 99%26}, 300)) {
		t.Fatalf("after Compact: clock %d value %.10q", got.Clock, got.Value)
	}
	if st := db.Stats(); st.Records != 1 || st.DeadBytes != 0 {
		t.Fatalf("after Compact: %+v", st)
	}

	live := db.cur.Load().logStart // the only record now
	db.cur.Load().m[live+recHdrSize+1] ^= 0xff
	if err := db.Compact(CompactOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Compact with a damaged live record: %v, want %v", err, ErrCorrupt)
	}
	defer func(old int) { maxSortedLive = old }(maxSortedLive)
	maxSortedLive = 0 // walking the log
	if err := db.Compact(CompactOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Compact walking the log, with a damaged live record: %v, want %v", err, ErrCorrupt)
	}
}

// Ensure that compactions running alongside writers that overwrite,
// delete, tombstone and re-add keys lose and resurrect nothing: at the end
// every key holds its writer's last outcome, before and after a reopen.
// Both ways of finding the live records are checked: through the slot
// table, and walking the log when there are too many to sort.
func TestCompactWhileChurning(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
	}{{"slots", maxSortedLive}, {"walk", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(old int) { maxSortedLive = old }(maxSortedLive)
			maxSortedLive = tc.max
			testCompactWhileChurning(t)
		})
	}
}

func testCompactWhileChurning(t *testing.T) {
	db, path := tempDB(t, &Options{Sync: SyncNone, Buckets: 2048})
	const writers, keys, ops = 4, 150, 20000
	want := make([]map[string]*Record, writers) // nil value: absent
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		want[w] = make(map[string]*Record)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			m := want[w]
			for i := 0; i < ops; i++ {
				k := key(w*keys + rng.Intn(keys))
				clock := uint64(i + 1)
				switch op := rng.Intn(10); {
				case op < 6:
					rec := &Record{Key: k, Value: bytes.Repeat(k, 1+rng.Intn(40)), Clock: clock, Flags: uint32(i)}
					if err := db.Put(rec); err != nil {
						t.Error(err)
						return
					}
					m[string(k)] = rec
				case op < 8:
					if _, err := db.Delete(k, nil); err != nil {
						t.Error(err)
						return
					}
					m[string(k)] = nil
				default:
					rec := &Record{Key: k, Clock: clock, Tombstone: true}
					if err := db.Put(rec); err != nil {
						t.Error(err)
						return
					}
					m[string(k)] = rec
				}
			}
		}(w)
	}
	stop := make(chan struct{})
	compacted := make(chan int)
	go func() {
		n := 0
		defer func() { compacted <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.Compact(CompactOptions{}); err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()
	wg.Wait()
	close(stop)
	if n := <-compacted; n < 2 {
		t.Logf("only %d compactions ran during the writes", n)
	}
	if err := db.Compact(CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	check := func(db *DB, when string) {
		t.Helper()
		n := 0
		for w := range want {
			for k, rec := range want[w] {
				got, _, err := db.Get([]byte(k), nil)
				if rec == nil {
					if err != ErrNotFound {
						t.Fatalf("%s: Get(%q) = clock %d, %v; want not found", when, k, got.Clock, err)
					}
					continue
				}
				n++
				if err != nil || got.Clock != rec.Clock || got.Tombstone != rec.Tombstone ||
					!bytes.Equal(got.Value, rec.Value) || (!rec.Tombstone && got.Flags != rec.Flags) {
					t.Fatalf("%s: Get(%q) = %+v, %v; want %+v", when, k, got, err, rec)
				}
			}
		}
		if db.Len() != n {
			t.Fatalf("%s: Len %d, want %d", when, db.Len(), n)
		}
	}
	check(db, "after the writes")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(db, "after reopening")
}

// Ensure that Compact leaves at most lastStep bytes for the catch-up it
// makes with writers held, also when much was written while it synced
// the new file (a stream of large values once held writers for 3.6 s).
func TestCompactShortLastStep(t *testing.T) {
	db, _ := tempDB(t, &Options{Sync: SyncNone, Buckets: 1024})
	defer db.Close()
	big := bytes.Repeat([]byte("v"), 64<<10)
	for i := range 200 {
		if err := db.Put(&Record{Key: key(i % 50), Value: big, Clock: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	clock := uint64(1000)
	syncs := 0
	testHookSynced = func() {
		syncs++
		if syncs > 1 {
			return
		}
		for i := range 100 { // 6.4 MB written during the first sync
			clock++
			if err := db.Put(&Record{Key: key(i % 50), Value: big, Clock: clock}); err != nil {
				t.Error(err)
			}
		}
	}
	var last int64 = -1
	testHookLastStep = func(b int64) { last = b }
	defer func() { testHookSynced, testHookLastStep = nil, nil }()
	if err := db.Compact(CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if last < 0 || last > lastStep {
		t.Fatalf("last catch-up with writers held: %d bytes, want at most %d", last, lastStep)
	}
	if syncs != 2 {
		t.Errorf("unlocked syncs: %d, want 2", syncs)
	}
	for i := range 50 {
		rec, _, err := db.Get(key(i), nil)
		if err != nil || rec.Clock != 1000+uint64(50+i+1) {
			t.Fatalf("key %d after compact: clock %d, %v; want %d", i, rec.Clock, err, 1000+50+i+1)
		}
	}
}
