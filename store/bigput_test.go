package store

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// benchPutBig writes large values the way a server's store does (Open with
// the server's default SyncInterval), to fresh keys or overwriting a few.
func benchPutBig(b *testing.B, size, keys int) {
	defer func(old bool) { heapSlots = old }(heapSlots)
	heapSlots = false
	db, err := Open(filepath.Join(b.TempDir(), "b.kch"), &Options{Sync: SyncInterval})
	if err != nil {
		b.Fatal(err)
	}
	v := bytes.Repeat([]byte("v"), size)
	k := []byte("kumo-key0000000\x00")
	rec := Record{Key: k, Value: v}
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		n := i
		if keys > 0 {
			n = i % keys
		}
		benchKey(k, n)
		if err := db.Put(&rec); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkPut1MFresh(b *testing.B)     { benchPutBig(b, 1<<20, 0) }
func BenchmarkPut1MOverwrite(b *testing.B) { benchPutBig(b, 1<<20, 16) }
func BenchmarkPut100KFresh(b *testing.B)   { benchPutBig(b, 100_000, 0) }
