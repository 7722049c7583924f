package benchload

import (
	"testing"
	"time"
)

func TestBucketEdges(t *testing.T) {
	// Every bucket's range maps back to itself, and consecutive buckets tile
	// the number line.
	for i := 0; i < histBuckets-1; i++ {
		lo, hi := bucketLow(i), bucketHigh(i)
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d: [%d,%d] maps to %d,%d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if next := bucketLow(i + 1); next != hi+1 {
			t.Fatalf("bucket %d ends at %d, bucket %d starts at %d", i, hi, i+1, next)
		}
		if i >= 2*histSub && float64(hi-lo+1)/float64(lo) > 1.0/histSub+1e-12 {
			t.Fatalf("bucket %d [%d,%d] wider than 1/%d", i, lo, hi, histSub)
		}
	}
	if got := bucketOf(1 << 62); got != histBuckets-1 {
		t.Fatalf("huge value in bucket %d, want last %d", got, histBuckets-1)
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name string
		ns   []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{100}, 0.999, 100},
		{"exact small", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5},
		{"exact p90", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9, 9},
		{"p100 is max", []time.Duration{1, 2, 3, 1000}, 1, 1000},
		// 1000 ns lies in bucket [992,1007]; the quantile is its upper edge.
		{"bucket upper edge", []time.Duration{1000, 1000, 5000}, 0.5, 1007},
		{"capped at max", []time.Duration{1000}, 0.5, 1000},
		{"negative is zero", []time.Duration{-5}, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, d := range tt.ns {
				h.Record(d)
			}
			if got := h.Quantile(tt.q); got != tt.want {
				t.Fatalf("Quantile(%v) = %d, want %d", tt.q, got, tt.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	var a, b Histogram
	a.Record(10 * time.Microsecond)
	b.Record(20 * time.Microsecond)
	b.Record(3 * time.Millisecond)
	a.Merge(&b)
	if a.Count() != 3 || a.Max() != 3*time.Millisecond {
		t.Fatalf("merged count %d max %v", a.Count(), a.Max())
	}
	if q := a.Quantile(0.5); q < 20*time.Microsecond || q > 20*time.Microsecond*65/64 {
		t.Fatalf("merged p50 %v", q)
	}
}

func TestRecordAllocs(t *testing.T) {
	var h Histogram
	if n := testing.AllocsPerRun(100, func() { h.Record(123456) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}
