package server

import (
	"fmt"
	"testing"
	"time"

	"kumofs/proto/rpc"
)

// Ensure that writeLog.take returns the keys noted for its connection
// within the window, in copies, and only once; not those of other
// connections nor older ones; and that the ring keeps only the latest
// repairKeys sets.
func TestDirectLog(t *testing.T) {
	var l writeLog
	a, b := &rpc.Conn{}, &rpc.Conn{}
	l.note(a, []byte("k1"))
	l.note(b, []byte("k2"))
	l.note(a, []byte("k3"))
	if got := l.take(a, time.Now().Add(repairWindow+time.Second)); len(got) != 0 {
		t.Fatalf("keys older than the window: %q", got)
	}
	l.note(a, []byte("k4"))
	if got := l.take(a, time.Now()); len(got) != 1 || string(got[0]) != "k4" {
		t.Fatalf("take(a) = %q, want [k4] (k1, k3 were forgotten by the first take)", got)
	}
	if got := l.take(a, time.Now()); len(got) != 0 {
		t.Fatalf("second take(a) = %q", got)
	}
	got := l.take(b, time.Now())
	if len(got) != 1 || string(got[0]) != "k2" {
		t.Fatalf("take(b) = %q", got)
	}
	l.note(a, []byte("k2-overwrites")) // reuses a slot's array: got[0] must be a copy
	if string(got[0]) != "k2" {
		t.Fatalf("take's key aliases the log: %q", got[0])
	}
	for i := 0; i < repairKeys+10; i++ {
		l.note(b, []byte(fmt.Sprint("w", i)))
	}
	got = l.take(b, time.Now())
	if len(got) != repairKeys {
		t.Fatalf("take after a wrap: %d keys, want %d", len(got), repairKeys)
	}
	seen := map[string]bool{}
	for _, k := range got {
		seen[string(k)] = true
	}
	if seen["w0"] || seen["w9"] || !seen["w10"] || !seen[fmt.Sprint("w", repairKeys+9)] {
		t.Fatal("the ring did not keep the latest sets")
	}
}
