package memcache_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// multiBackend is a batchBackend whose batches also implement
// memcache.MultiBatch: GetMulti answers every key from the store, on
// another goroutine (or inline), and fails the keys for which fail says so.
type multiBackend struct {
	*batchBackend
	inline bool
	fail   func(key string) bool
	calls  atomic.Int64 // GetMulti calls
	keys   atomic.Int64 // keys through GetMulti
}

func (b *multiBackend) NewBatch() memcache.Batch {
	return &multiBatch{testBatch: testBatch{be: b.batchBackend}, mb: b}
}

type multiBatch struct {
	testBatch
	mb *multiBackend
}

func (t *multiBatch) GetMulti(keys [][]byte, withCAS bool, done []func(*memcache.Item, error)) {
	t.mb.calls.Add(1)
	t.mb.keys.Add(int64(len(keys)))
	ks := make([]string, len(keys))
	for i, k := range keys {
		ks[i] = string(k)
	}
	ds := append([]func(*memcache.Item, error){}, done...)
	t.held = append(t.held, func() bool {
		run := func() {
			for i, k := range ks {
				if t.mb.fail != nil && t.mb.fail(k) {
					ds[i](nil, errAsyncTest)
					continue
				}
				var it memcache.Item
				err := t.mb.Backend.Get(context.Background(), []byte(k), nil, &it)
				ds[i](noCAS(&it, withCAS), err)
			}
		}
		if t.mb.inline {
			run()
		} else {
			go run()
		}
		return true
	})
}

// Ensure that the keys of a multi-key get go out through GetMulti, one
// call per window of two or more keys, that the reply is byte for byte the
// blocking path's (misses, a repeated key, keys whose entry failed and were
// read again through Get), and that pipelined single-key gets use it too.
func TestMultiGet(t *testing.T) {
	var req, want strings.Builder
	line := "get"
	for i := range 40 {
		k := fmt.Sprintf("k%d", i)
		line += " " + k
		if i%3 == 0 {
			continue // a miss
		}
		v := strings.Repeat("v", i)
		fmt.Fprintf(&req, "set %s %d 0 %d\r\n%s\r\n", k, i, len(v), v)
		want.WriteString("STORED\r\n")
	}
	req.WriteString(line + " k1\r\n") // a repeated key
	for i := range 40 {
		if i%3 != 0 {
			fmt.Fprintf(&want, "VALUE k%d %d %d\r\n%s\r\n", i, i, i, strings.Repeat("v", i))
		}
	}
	want.WriteString("VALUE k1 1 1\r\nv\r\nEND\r\n")
	// Pipelined single-key gets after the multi-key one (a window of their own).
	req.WriteString("get k1\r\nget k2\r\nget k3\r\n")
	want.WriteString("VALUE k1 1 1\r\nv\r\nEND\r\nVALUE k2 2 2\r\nvv\r\nEND\r\nEND\r\n")

	for _, tc := range []struct {
		name   string
		inline bool
		fail   func(string) bool
	}{
		{"go", false, nil},
		{"inline", true, nil},
		{"failing entries", false, func(k string) bool { return strings.HasSuffix(k, "1") || k == "k2" }},
		{"all fail", true, func(string) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := &multiBackend{batchBackend: &batchBackend{asyncBackend: &asyncBackend{Backend: memtest.New(fixedClock), mode: asyncGo}},
				inline: tc.inline, fail: tc.fail}
			s := &memcache.Server{Backend: be, Now: fixedClock}
			fc := &fakeConn{r: strings.NewReader(req.String())}
			s.ServeConn(fc)
			if got := fc.w.String(); got != want.String() {
				t.Fatalf("\n got %q\nwant %q", got, want.String())
			}
			// The pipelined sets before grew the window to 16: 41 keys in
			// windows of 16 and 25, then the 3 pipelined gets.
			if c, k := be.calls.Load(), be.keys.Load(); c != 3 || k != 44 {
				t.Fatalf("GetMulti: %d calls with %d keys, want 3 with 44", c, k)
			}
		})
	}
}
