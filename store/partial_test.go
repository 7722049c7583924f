package store

import (
	"bytes"
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Ensure that recovery is right after an OS crash that wrote back any
// subset of the slot stores made since the checkpoint, and kept the log
// only up to some record boundary (rules R1–R3 in FORMAT.md): the store
// must equal the map as it was after the last surviving record.
func TestPartialFlush(t *testing.T) {
	defer func(old bool) { heapSlots = old }(heapSlots)
	heapSlots = true // the file's table stays at the checkpoint until we write it
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -model.seed)", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	iters := 60
	if testing.Short() {
		iters = 10
	}
	dir := fastTempDir(t)
	for it := 0; it < iters; it++ {
		path := filepath.Join(dir, "p.kch")
		os.Remove(path)
		db, err := Open(path, &Options{Sync: SyncNone, Buckets: 48})
		if err != nil {
			t.Fatal(err)
		}
		model := map[string][]byte{}
		op := func() {
			k := key(rng.IntN(40))
			if rng.IntN(3) == 0 {
				db.Delete(k, nil)
				delete(model, string(k))
				return
			}
			v := bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, rng.IntN(40))
			if err := db.Put(&Record{Key: k, Value: v}); err != nil {
				t.Fatal(err)
			}
			model[string(k)] = v
		}
		for i := 0; i < 150; i++ {
			op()
		}
		if err := db.Sync(); err != nil {
			t.Fatal(err)
		}
		type point struct {
			end   int64
			model map[string][]byte
		}
		points := []point{{int64(db.Stats().LogEnd), maps.Clone(model)}}
		for i := 0; i < 1+rng.IntN(60); i++ {
			op()
			points = append(points, point{int64(db.Stats().LogEnd), maps.Clone(model)})
		}
		g := db.cur.Load()
		final := make([]uint64, len(g.slots))
		copy(final, g.slots)
		db.crash()

		// The OS wrote back a random subset of the slot stores.
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 8)
		for i, s := range final {
			if rng.IntN(2) == 0 {
				binary.LittleEndian.PutUint64(b, s)
				f.WriteAt(b, slotsOffset+8*int64(i))
			}
		}
		// ... and the log up to some record boundary.
		want := points[len(points)-1]
		if rng.IntN(2) == 0 {
			want = points[rng.IntN(len(points))]
			f.Truncate(want.end)
		}
		f.Close()

		db, err = Open(path, &Options{Sync: SyncNone})
		if err != nil {
			t.Fatalf("seed %d iter %d: %v", seed, it, err)
		}
		for i := 0; i < 40; i++ {
			rec, _, err := db.Get(key(i), nil)
			v, ok := want.model[string(key(i))]
			if ok != (err == nil) || (ok && !bytes.Equal(rec.Value, v)) {
				t.Fatalf("seed %d iter %d: key %d: %v %q, want %v %q", seed, it, i, err, rec.Value, ok, v)
			}
		}
		if db.Len() != len(want.model) {
			t.Fatalf("seed %d iter %d: Len %d, want %d", seed, it, db.Len(), len(want.model))
		}
		// Writes after recovery (reusing removed slots) must not
		// resurrect anything, across a reopen either.
		model = maps.Clone(want.model)
		for i := 0; i < 40; i++ {
			op()
		}
		db.Close()
		if db, err = Open(path, &Options{Sync: SyncNone}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 40; i++ {
			rec, _, err := db.Get(key(i), nil)
			v, ok := model[string(key(i))]
			if ok != (err == nil) || (ok && !bytes.Equal(rec.Value, v)) {
				t.Fatalf("seed %d iter %d after: key %d: %v %q, want %v %q", seed, it, i, err, rec.Value, ok, v)
			}
		}
		db.Close()
	}
}
