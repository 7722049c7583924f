package memcache

import (
	"testing"
	"time"
)

func TestLogLimit(t *testing.T) {
	var l logLimit
	now := time.Unix(1000, 0)
	for i := 0; i < connLogBurst; i++ {
		if ok, dropped := l.allow(now.Add(time.Duration(i) * time.Second)); !ok || dropped != 0 {
			t.Fatalf("line %d: allow = %v, %d", i, ok, dropped)
		}
	}
	for i := 0; i < 7; i++ {
		if ok, _ := l.allow(now.Add(30 * time.Second)); ok {
			t.Fatalf("line %d over the burst allowed", connLogBurst+i)
		}
	}
	// A new window: the first line says how many were left out.
	if ok, dropped := l.allow(now.Add(connLogWindow)); !ok || dropped != 7 {
		t.Fatalf("first line of the next window: allow = %v, %d; want true, 7", ok, dropped)
	}
	if ok, dropped := l.allow(now.Add(connLogWindow + time.Second)); !ok || dropped != 0 {
		t.Fatalf("second line of the next window: allow = %v, %d; want true, 0", ok, dropped)
	}
}
