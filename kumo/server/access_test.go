package server

import "testing"

// Ensure that the access table reports a read only for the version read,
// and forgets a key whose slot another key took.
func TestAccessTable(t *testing.T) {
	tb := newAccessTable()
	const h = 0x1234_5678_9abc_def0
	if f, l := tb.lookup(h, 7); f || l != 0 {
		t.Fatalf("empty table: %v %d", f, l)
	}
	tb.note(h, 7, 1000)
	if f, l := tb.lookup(h, 7); !f || l != 1000 {
		t.Fatalf("after a read: %v %d", f, l)
	}
	if f, _ := tb.lookup(h, 8); f {
		t.Fatal("a newer version counts as read")
	}
	tb.note(h+accessSlots, 3, 2000) // same slot, another key
	if f, _ := tb.lookup(h, 7); f {
		t.Fatal("a key whose slot was taken is still remembered")
	}
	if f, l := tb.lookup(h+accessSlots, 3); !f || l != 2000 {
		t.Fatalf("the new key: %v %d", f, l)
	}
}
