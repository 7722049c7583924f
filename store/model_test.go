package store

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

var modelSeed = flag.Uint64("model.seed", 0, "seed for TestModel (0 = random)")

// Ensure that random sequences of put, update, delete, reopen, crash,
// compact, optimize and backup behave like a map.
func TestModel(t *testing.T) {
	withSlots(t, func(t *testing.T) {
		seed := *modelSeed
		if seed == 0 {
			seed = uint64(time.Now().UnixNano())
		}
		t.Logf("seed %d (rerun with -model.seed)", seed)
		rng := rand.New(rand.NewPCG(seed, 1))
		ops := 1000
		if testing.Short() {
			ops = 300
		}
		dir := fastTempDir(t)
		path := filepath.Join(dir, "m.kch")
		const nkeys = 40
		const now = int64(1_000_000)
		model := map[string]Record{}
		open := func() *DB {
			db, err := Open(path, &Options{Sync: SyncNone, Buckets: 64})
			if err != nil {
				t.Fatalf("seed %d: open: %v", seed, err)
			}
			return db
		}
		db := open()
		defer func() { db.Close() }()
		check := func(step int, op string) {
			for i := 0; i < nkeys; i++ {
				k := key(i)
				want, ok := model[string(k)]
				got, _, err := db.Get(k, nil)
				if !ok {
					if err != ErrNotFound {
						t.Fatalf("seed %d step %d (%s): key %d: %v, want not found", seed, step, op, i, err)
					}
					continue
				}
				if err != nil || !bytes.Equal(got.Value, want.Value) || got.Clock != want.Clock || got.Flags != want.Flags ||
					got.Exptime != want.Exptime || got.Tombstone != want.Tombstone {
					t.Fatalf("seed %d step %d (%s): key %d: %v %+v, want %+v", seed, step, op, i, err, got, want)
				}
			}
			if db.Len() != len(model) {
				t.Fatalf("seed %d step %d (%s): Len %d, want %d", seed, step, op, db.Len(), len(model))
			}
		}
		randRec := func() Record {
			k := key(rng.IntN(nkeys))
			r := Record{Key: k, Clock: uint64(now-rng.Int64N(100))<<32 | uint64(rng.IntN(4)), Flags: rng.Uint32()}
			if rng.IntN(5) == 0 {
				r.Tombstone = true
				return r
			}
			r.Value = bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, rng.IntN(300))
			switch rng.IntN(3) {
			case 1:
				r.Exptime = uint32(now - 10)
			case 2:
				r.Exptime = uint32(now + 10)
			}
			return r
		}
		for step := 0; step < ops; step++ {
			op := ""
			switch x := rng.IntN(100); {
			case x < 40:
				op = "put"
				r := randRec()
				if err := db.Put(&r); err != nil {
					t.Fatal(err)
				}
				r.Key = append([]byte(nil), r.Key...)
				if r.Tombstone {
					r.Value = nil
				}
				model[string(r.Key)] = r
			case x < 60:
				op = "update"
				r := randRec()
				old, had := model[string(r.Key)]
				want := !had || old.Clock < r.Clock
				ok, err := db.Update(&r, func(o *Record) bool {
					if (o != nil) != had || (o != nil && o.Clock != old.Clock) {
						t.Errorf("pred saw %+v, model has %v %+v", o, had, old)
					}
					return o == nil || o.Clock < r.Clock
				})
				if err != nil || ok != want {
					t.Fatalf("update: %v %v want %v", ok, err, want)
				}
				if ok {
					if r.Tombstone {
						r.Value = nil
					}
					model[string(r.Key)] = r
				}
			case x < 75:
				op = "delete"
				k := key(rng.IntN(nkeys))
				_, had := model[string(k)]
				ok, err := db.Delete(k, nil)
				if err != nil || ok != had {
					t.Fatalf("delete: %v %v want %v", ok, err, had)
				}
				delete(model, string(k))
			case x < 81:
				op = "reopen"
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				db = open()
			case x < 87:
				op = "crash"
				if rng.IntN(2) == 0 {
					db.Sync()
				}
				db.crash()
				db = open()
			case x < 93:
				op = "compact"
				if err := db.Compact(CompactOptions{Now: time.Unix(now, 0), TombstoneAge: 50 * time.Second}); err != nil {
					t.Fatal(err)
				}
				for k, r := range model {
					if !r.Tombstone && r.Exptime != 0 && int64(r.Exptime) <= now {
						r = Record{Key: r.Key, Clock: r.Clock, Tombstone: true}
						model[k] = r
					}
					if r.Tombstone && int64(r.Clock>>32)+50 < now {
						delete(model, k)
					}
				}
				if st := db.Stats(); st.DeadBytes != 0 || st.DeletedSlots != 0 {
					t.Fatalf("after compact: %+v", st)
				}
			case x < 96:
				op = "optimize"
				if err := db.Optimize(uint64(nkeys + 8 + rng.IntN(64))); err != nil { // room for every key: a full table is ErrFull by design
					t.Fatal(err)
				}
			default:
				op = "backup+foreach"
				dst := filepath.Join(dir, "backup.kch")
				if err := db.Backup(dst); err != nil {
					t.Fatal(err)
				}
				b, err := Open(dst, &Options{Sync: SyncNone})
				if err != nil {
					t.Fatal(err)
				}
				seen := map[string]bool{}
				var last []byte
				err = b.ForEach(func(r *Record) error {
					want, ok := model[string(r.Key)]
					if !ok || !bytes.Equal(want.Value, r.Value) || want.Clock != r.Clock || seen[string(r.Key)] {
						return fmt.Errorf("backup record %q %+v, model %v %+v", r.Key, r, ok, want)
					}
					seen[string(r.Key)] = true
					last = append(last[:0], r.Key...)
					return nil
				})
				if err != nil || len(seen) != len(model) {
					t.Fatalf("backup: %v, %d of %d keys", err, len(seen), len(model))
				}
				b.Close()
			}
			check(step, op)
		}
	})
}
