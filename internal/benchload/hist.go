package benchload

import (
	"math/bits"
	"time"
)

// Histogram geometry: values below 2^histSubBits*2 ns are exact; above, each
// power of two is split into 2^histSubBits linear buckets (relative error
// below 1/64). histBuckets covers latencies up to 2^40 ns (about 18 min);
// larger values land in the last bucket.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histMaxExp  = 40
	histBuckets = (histMaxExp-histSubBits)*histSub + 2*histSub
)

// Histogram is a log-linear latency histogram. Record does no allocation.
// The zero value is empty and ready to use. A Histogram is not safe for
// concurrent use; each connection keeps its own and they are merged at the
// end.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    uint64
}

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v uint64) int {
	b := bits.Len64(v)
	if b <= histSubBits+1 {
		return int(v)
	}
	shift := b - histSubBits - 1
	i := shift*histSub + int(v>>uint(shift))
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// bucketLow returns the smallest value in bucket i.
func bucketLow(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	return uint64(i-shift*histSub) << uint(shift)
}

// bucketHigh returns the largest value in bucket i.
func bucketHigh(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	return bucketLow(i) + 1<<uint(shift) - 1
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

// Count returns the number of recorded latencies.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest recorded latency.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Merge adds every latency of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Quantile returns the latency at quantile q (0 < q <= 1): the upper edge of
// the bucket holding the ceil(q*n)-th smallest value, capped at Max. An empty
// histogram returns 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if float64(rank) < q*float64(h.n) {
		rank++
	}
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := bucketHigh(i)
			if v > h.max {
				v = h.max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}
