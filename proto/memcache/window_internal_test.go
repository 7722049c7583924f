package memcache

import "testing"

// Ensure that windows start at minWindow keys, shrink to no fewer for large
// values, and grow again for small ones: a size of one would serve a
// connection's pipelined gets one at a time for good (such a window never
// forms, so it never adapts).
func TestWindowAdapts(t *testing.T) {
	c := &conn{s: &Server{Backend: nil}}
	m := c.initMany()
	if m.size != minWindow {
		t.Fatalf("first window: %d keys, want %d", m.size, minWindow)
	}
	fill := func(n, vlen int) {
		for i := 0; i < n; i++ {
			m.slots[i].err = nil
			m.slots[i].it.Value = make([]byte, vlen)
		}
	}
	m.size = 16
	for _, want := range []int{8, 4, 2, 2, 2} {
		fill(m.size, 1<<20)
		m.adapt(m.size)
		if m.size != want {
			t.Fatalf("after a window of 1 MB values: %d keys, want %d", m.size, want)
		}
	}
	for _, want := range []int{4, 8, 16, 32, 64, 64} {
		fill(m.size, 100)
		m.adapt(m.size)
		if m.size != want {
			t.Fatalf("after a full window of small values: %d keys, want %d", m.size, want)
		}
	}
}
