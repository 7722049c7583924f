package store

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"
)

const benchKeys = 1 << 16

func benchDB(b *testing.B) *DB {
	defer func(old bool) { heapSlots = old }(heapSlots)
	heapSlots = false // production layout
	db, err := Open(filepath.Join(b.TempDir(), "b.kch"), &Options{Sync: SyncNone, Buckets: 2 * benchKeys})
	if err != nil {
		b.Fatal(err)
	}
	return db
}

func benchKey(k []byte, i int) []byte {
	binary.BigEndian.PutUint64(k[8:], uint64(i)*0x9e3779b97f4a7c15)
	return k
}

// BenchmarkGet1K reads random 1 KiB values with a reused buffer.
func BenchmarkGet1K(b *testing.B) {
	db := benchDB(b)
	defer db.Close()
	v := bytes.Repeat([]byte("v"), 1024)
	k := []byte("kumo-key0000000\x00")
	for i := 0; i < benchKeys; i++ {
		db.Put(&Record{Key: benchKey(k, i), Value: v})
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		k := []byte("kumo-key0000000\x00")
		buf := make([]byte, 0, 2048)
		i := 0
		for pb.Next() {
			i = (i + 7919) % benchKeys
			_, nb, err := db.Get(benchKey(k, i), buf)
			if err != nil {
				b.Fatal(err)
			}
			buf = nb
		}
	})
}

// BenchmarkPut1K overwrites random keys with 1 KiB values.
func BenchmarkPut1K(b *testing.B) {
	db := benchDB(b)
	defer db.Close()
	v := bytes.Repeat([]byte("v"), 1024)
	k := []byte("kumo-key0000000\x00")
	rec := Record{Key: k, Value: v}
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchKey(k, i%benchKeys)
		if err := db.Put(&rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPut1KAlways is Put with SyncAlways from parallel writers
// (group commit).
func BenchmarkPut1KAlways(b *testing.B) {
	defer func(old bool) { heapSlots = old }(heapSlots)
	heapSlots = false
	db, err := Open(filepath.Join(b.TempDir(), "b.kch"), &Options{Sync: SyncAlways, Buckets: 2 * benchKeys})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	v := bytes.Repeat([]byte("v"), 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		k := []byte("kumo-key0000000\x00")
		rec := Record{Key: k, Value: v}
		i := 0
		for pb.Next() {
			i++
			benchKey(k, i%benchKeys)
			if err := db.Put(&rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCompactOverwritten compacts a log of 10,000 live 1 KiB records
// and 19 overwritten versions of each (about 200 MB, 5% live): the shape
// a server's store has after a few seconds of sets to a small key space.
func BenchmarkCompactOverwritten(b *testing.B) {
	db := benchDB(b)
	defer db.Close()
	v := bytes.Repeat([]byte("v"), 1024)
	k := []byte("kumo-key0000000\x00")
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for r := 0; r < 20; r++ {
			for j := 0; j < 10000; j++ {
				if err := db.Put(&Record{Key: benchKey(k, j), Value: v, Clock: uint64(r + 1)}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StartTimer()
		if err := db.Compact(CompactOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
