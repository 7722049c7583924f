package store

import (
	"bytes"
	"fmt"
	"testing"
)

// TestPopulateAfterUnalignedAlloc: a record longer than the log's growth
// chunk is allocated to its own end, which is not a page boundary. The
// next populate must still start on a page boundary: madvise refused the
// unaligned start with EINVAL, which turned populating off for the life of
// the file, so every later write took a page fault per page.
func TestPopulateAfterUnalignedAlloc(t *testing.T) {
	db, _ := tempDB(t, &Options{Sync: SyncNone, Buckets: 4096})
	defer db.Close()
	small := bytes.Repeat([]byte("s"), 1000)
	if err := db.Put(&Record{Key: []byte("first"), Value: small}); err != nil {
		t.Fatal(err)
	}
	g := db.cur.Load()
	if g.popEnd <= 0 {
		t.Skip("MADV_POPULATE_WRITE unsupported here")
	}
	// Longer than the first growth chunks (1 MiB, then the log's size).
	big := bytes.Repeat([]byte("b"), 3<<20+100)
	if err := db.Put(&Record{Key: []byte("big"), Value: big}); err != nil {
		t.Fatal(err)
	}
	if g.allocEnd%4096 == 0 {
		t.Fatalf("allocEnd %d is page-aligned: the test no longer covers an unaligned end", g.allocEnd)
	}
	for i := 0; i < 2000; i++ {
		if err := db.Put(&Record{Key: fmt.Appendf(nil, "k%d", i), Value: small}); err != nil {
			t.Fatal(err)
		}
		if g.popEnd < 0 {
			t.Fatalf("populate turned off after small record %d (allocEnd %d)", i, g.allocEnd)
		}
	}
	if rec, _, err := db.Get([]byte("big"), nil); err != nil || !bytes.Equal(rec.Value, big) {
		t.Fatalf("big record: %v", err)
	}
}
