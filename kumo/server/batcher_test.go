package server

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/ring"
	"kumofs/store"
)

// Ensure that a batch of records (a repair push, a rebalance copy) is
// delivered only within half the garbage time of reading its first
// record. A later one could bring back a key whose delete was purged
// meanwhile: a repair push retried until its dead target came back after
// the garbage time, with its old store discarded, resurrected the key
// (TestDeletedKeyStaysDeletedAfterGarbageTime, now and then).
func TestBatcherDropsStaleRecords(t *testing.T) {
	src, _ := startWith(t, Config{StorePath: filepath.Join(t.TempDir(), "src"), GarbageMax: 2 * time.Second})
	dst, dcl := startAlone(t, filepath.Join(t.TempDir(), "dst"))
	to, err := ring.ParseAddr(dst.Addr().String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ct := src.clk.Now()
	send := func(key string, age time.Duration) *batcher {
		b := &batcher{s: src, to: to, what: "test"}
		b.add(&store.Record{Key: dbkey(key), Value: []byte("v"), Clock: ct})
		b.since = b.since.Add(-age)
		b.flush()
		return b
	}

	if b := send("fresh", 900*time.Millisecond); b.err != nil || b.sent != 1 {
		t.Fatalf("a batch read 0.9 s ago (garbage time 2 s): err %v, %d sent; want delivered", b.err, b.sent)
	}
	if v, ok := getKey(t, dcl, wire.SrvGet, "fresh"); !ok || string(v.Data) != "v" {
		t.Fatalf("fresh on the target = %q, %v", v.Data, ok)
	}

	start := time.Now()
	b := send("stale", time.Second)
	if !errors.Is(b.err, errStaleBatch) || b.sent != 0 {
		t.Fatalf("a batch read 1 s ago (garbage time 2 s): err %v, %d sent; want %v", b.err, b.sent, errStaleBatch)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the stale batch was given up after %v, not at once", d)
	}
	if v, ok := getKey(t, dcl, wire.SrvGet, "stale"); ok {
		t.Fatalf("the stale batch reached the target: %q", v.Data)
	}

	// A batch that fills slowly goes out before its first record gets
	// old: the record added after a quarter of the garbage time starts
	// a new batch.
	b = &batcher{s: src, to: to, what: "test"}
	b.add(&store.Record{Key: dbkey("slow1"), Value: []byte("v"), Clock: ct})
	b.since = b.since.Add(-600 * time.Millisecond)
	b.add(&store.Record{Key: dbkey("slow2"), Value: []byte("v"), Clock: ct})
	if b.err != nil || b.sent != 1 || b.count != 1 {
		t.Fatalf("after a slow second record: err %v, %d sent, %d held; want 1 sent, 1 held", b.err, b.sent, b.count)
	}
	b.flush()
	for _, k := range []string{"slow1", "slow2"} {
		if _, ok := getKey(t, dcl, wire.SrvGet, k); !ok || b.err != nil {
			t.Fatalf("%s did not reach the target (err %v)", k, b.err)
		}
	}
}

// Ensure that a batch to a peer that accepts connections but answers
// nothing gives up at its deadline. The first batch to a peer asks it for
// its stream port; that question used to wait for the call timeout (3 s
// here) or the peer's silence to be noticed (2 s), keeping the batch's
// records in flight past half the garbage time.
func TestBatcherHungPeerKeepsDeadline(t *testing.T) {
	src, _ := startWith(t, Config{StorePath: filepath.Join(t.TempDir(), "src"), GarbageMax: 2 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // protects conns
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() { // a hung peer: reads everything, answers nothing
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(io.Discard, nc)
			}()
		}
	}()
	to, err := ring.ParseAddr(ln.Addr().String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	b := &batcher{s: src, to: to, what: "test"}
	b.add(&store.Record{Key: dbkey("k"), Value: []byte("v"), Clock: src.clk.Now()})
	b.since = b.since.Add(-900 * time.Millisecond) // deadline: 0.1 s from now
	start := time.Now()
	b.flush()
	d := time.Since(start)
	if !errors.Is(b.err, errStaleBatch) || b.sent != 0 {
		t.Fatalf("a batch to a hung peer: err %v, %d sent; want %v", b.err, b.sent, errStaleBatch)
	}
	if d > time.Second {
		t.Errorf("the batch to a hung peer was given up after %v; its deadline was 0.1 s away", d)
	}
}
