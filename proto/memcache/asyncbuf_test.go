package memcache_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"kumofs/proto/memcache"
	"kumofs/proto/memcache/memtest"
)

// failLaterBackend serves sets and gets asynchronously and fails each one
// once release is called, so that the connection serves it again through
// its fallback (Backend.Store, Backend.Get).
type failLaterBackend struct {
	*memtest.Backend
	release func() <-chan struct{} // the channel whose closing fails the next request
}

func (b *failLaterBackend) GetAsync(key []byte, withCAS bool, done func(*memcache.Item, error)) bool {
	release := b.release()
	go func() {
		<-release
		done(nil, errAsyncTest)
	}()
	return true
}

func (b *failLaterBackend) SetAsync(it *memcache.Item, done func(uint64, error)) bool {
	release := b.release()
	go func() {
		<-release
		done(0, errAsyncTest)
	}()
	return true
}

// Ensure that a large set served asynchronously and then again by its
// fallback stores its own value: the connection must not give its input
// buffer, which holds the value, back to the pool while the request is
// pending. (It did: another connection's large value could then fill the
// buffer, and the fallback stored those bytes under this key.)
//
// Buffers returned to the pool are overwritten with 'X' here, and each
// asynchronous request fails as soon as the connection either returns a
// large buffer or waits for the request, whichever comes first.
func TestAsyncFallbackKeepsLargeValue(t *testing.T) {
	const size = 100 << 10
	var (
		mu      sync.Mutex
		trigger chan struct{} // closed once per request, then replaced
	)
	fire := func() {
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-trigger:
		default:
			close(trigger)
		}
	}
	memcache.SetBufHooks(func(b []byte) {
		if cap(b) >= size {
			for i := range b {
				b[i] = 'X'
			}
			fire()
		}
	}, fire)
	defer memcache.SetBufHooks(nil, nil)

	mb := memtest.New(fixedClock)
	mb.MaxItemSize = 1 << 20
	be := &failLaterBackend{Backend: mb, release: func() <-chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		return trigger
	}}
	s := &memcache.Server{Backend: be, Now: fixedClock, MaxItemSize: mb.MaxItemSize}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	defer func() {
		s.Close()
		<-served
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)

	for i, fill := range []byte{'a', 'b', 'c'} {
		mu.Lock()
		trigger = make(chan struct{})
		mu.Unlock()
		key := fmt.Sprintf("big%d", i)
		value := bytes.Repeat([]byte{fill}, size)
		fmt.Fprintf(c, "set %s 0 0 %d\r\n%s\r\n", key, size, value)
		expectLine(t, br, "STORED\r\n")
		var it memcache.Item
		if err := mb.Get(context.Background(), []byte(key), nil, &it); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if !bytes.Equal(it.Value, value) {
			t.Fatalf("%s holds %d bytes starting %q, want %d times %q", key, len(it.Value), it.Value[:min(len(it.Value), 16)], size, fill)
		}

		// The get's fallback reads the value into the connection's
		// output buffer (growing it), which the connection must not look
		// at meanwhile. Nothing on the connection waits here: the test
		// fails the get itself.
		mu.Lock()
		trigger = make(chan struct{})
		mu.Unlock()
		fmt.Fprintf(c, "get %s\r\n", key)
		fire()
		expectLine(t, br, fmt.Sprintf("VALUE %s 0 %d\r\n", key, size))
		got := make([]byte, size+2)
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:size], value) {
			t.Fatalf("get %s: %d bytes starting %q, want %d times %q", key, size, got[:16], size, fill)
		}
		expectLine(t, br, "END\r\n")
	}
}
