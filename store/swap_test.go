package store

import (
	"bytes"
	"sync/atomic"
	"testing"
)

// Ensure that a write caught between appending its record and publishing
// its slot while a compaction copies the log is not lost by the swap.
//
// The writer's record is already below the log end but its slot still
// shows the previous state, so the unlocked copy must not judge it dead;
// the compaction finishes its unlocked phases while the writer waits,
// then the writer publishes and the compaction swaps. The outcome must
// be that of the write, in the new file and after a crash and reopen.
// (Before the fix the copy walked to the plain log end, skipped the
// record as dead and the catch-ups started after it: a new key vanished,
// an overwrite went back to the old value, a removed key came back.)
func TestCompactInFlightWrite(t *testing.T) {
	tests := []struct {
		name   string
		before bool // the key has a version before the write
		write  func(db *DB, k []byte) error
		want   *Record // nil: the key is absent
	}{
		{
			name: "new key",
			write: func(db *DB, k []byte) error {
				return db.Put(&Record{Key: k, Value: []byte("new"), Clock: 7})
			},
			want: &Record{Value: []byte("new"), Clock: 7},
		},
		{
			name:   "overwrite",
			before: true,
			write: func(db *DB, k []byte) error {
				return db.Put(&Record{Key: k, Value: []byte("second"), Clock: 8})
			},
			want: &Record{Value: []byte("second"), Clock: 8},
		},
		{
			name:   "tombstone",
			before: true,
			write: func(db *DB, k []byte) error {
				return db.Put(&Record{Key: k, Clock: 9, Tombstone: true})
			},
			want: &Record{Value: []byte{}, Clock: 9, Tombstone: true},
		},
		{
			name:   "delete",
			before: true,
			write: func(db *DB, k []byte) error {
				ok, err := db.Delete(k, nil)
				if err == nil && !ok {
					t.Errorf("Delete: key absent")
				}
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withSlots(t, func(t *testing.T) {
				testCompactInFlightWrite(t, tt.before, tt.write, tt.want)
			})
		})
	}
}

func testCompactInFlightWrite(t *testing.T, before bool, write func(*DB, []byte) error, want *Record) {
	db, path := tempDB(t, nil)
	for i := 0; i < 50; i++ {
		if err := db.Put(&Record{Key: key(i), Value: val(i), Clock: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	victim := key(1000)
	if before {
		if err := db.Put(&Record{Key: victim, Value: []byte("first"), Clock: 1}); err != nil {
			t.Fatal(err)
		}
	}

	// The first store of the victim (the writer's, under writeMu) starts
	// the compaction and waits until it reaches the swap; the
	// compaction's own stores of the victim pass through.
	var armed atomic.Bool
	armed.Store(true)
	swapReached := make(chan struct{})
	compactErr := make(chan error, 1)
	testHookSwap = func() { close(swapReached) }
	testHookPublish = func(k []byte) {
		if !bytes.Equal(k, victim) || !armed.CompareAndSwap(true, false) {
			return
		}
		go func() { compactErr <- db.Compact(CompactOptions{}) }()
		<-swapReached
	}
	defer func() { testHookSwap, testHookPublish = nil, nil }()
	if err := write(db, victim); err != nil {
		t.Fatal(err)
	}
	if err := <-compactErr; err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if armed.Load() {
		t.Fatal("the hook never ran")
	}
	testHookSwap, testHookPublish = nil, nil

	check := func(when string) {
		t.Helper()
		rec, _, err := db.Get(victim, nil)
		if want == nil {
			if err != ErrNotFound {
				t.Fatalf("%s: removed key: %v %+v, want ErrNotFound", when, err, rec)
			}
		} else if err != nil || !bytes.Equal(rec.Value, want.Value) || rec.Clock != want.Clock || rec.Tombstone != want.Tombstone {
			t.Fatalf("%s: got %v %+v, want %+v", when, err, rec, *want)
		}
		for i := 0; i < 50; i++ {
			rec, _, err := db.Get(key(i), nil)
			if err != nil || !bytes.Equal(rec.Value, val(i)) || rec.Clock != uint64(i) {
				t.Fatalf("%s: key %d: %v %+v", when, i, err, rec)
			}
		}
	}
	check("after the swap")
	db.crash()
	var err error
	if db, err = Open(path, &Options{Sync: SyncNone}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check("after a crash and reopen")
}
