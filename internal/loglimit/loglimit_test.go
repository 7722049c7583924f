package loglimit

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	l := New(nil)
	now := time.Unix(1000, 0)
	for i := 0; i < Burst; i++ {
		if ok, dropped := l.Allow(now.Add(time.Duration(i) * time.Second)); !ok || dropped != 0 {
			t.Fatalf("line %d: Allow = %v, %d", i, ok, dropped)
		}
	}
	for i := 0; i < 7; i++ {
		if ok, _ := l.Allow(now.Add(30 * time.Second)); ok {
			t.Fatalf("line %d over the burst allowed", Burst+i)
		}
	}
	// A new window: the first line says how many were left out.
	if ok, dropped := l.Allow(now.Add(Window)); !ok || dropped != 7 {
		t.Fatalf("first line of the next window: Allow = %v, %d; want true, 7", ok, dropped)
	}
	if ok, dropped := l.Allow(now.Add(Window + time.Second)); !ok || dropped != 0 {
		t.Fatalf("second line of the next window: Allow = %v, %d; want true, 0", ok, dropped)
	}
}

func TestLogf(t *testing.T) {
	var lines []string
	l := New(func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) })
	for i := 0; i < 3*Burst; i++ {
		l.Logf("line %d", i)
	}
	if len(lines) != Burst || lines[0] != "line 0" || lines[Burst-1] != fmt.Sprintf("line %d", Burst-1) {
		t.Fatalf("lines %q", lines)
	}
	// Next window (moved back by hand): the count of the left-out lines.
	l.mu.Lock()
	l.start = l.start.Add(-Window)
	l.mu.Unlock()
	l.Logf("after %s", "50%")
	if got, want := lines[len(lines)-1], fmt.Sprintf("after 50%% (%d more such lines left out)", 2*Burst); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if strings.Count(strings.Join(lines, "\n"), "left out") != 1 {
		t.Fatalf("lines %q", lines)
	}
	New(nil).Logf("nothing") // a nil logf writes nothing
}

func TestNewBurst(t *testing.T) {
	n := 0
	l := NewBurst(func(string, ...any) { n++ }, 3)
	for i := 0; i < 10; i++ {
		l.Logf("x")
	}
	if n != 3 {
		t.Fatalf("%d lines through a burst of 3", n)
	}
}
