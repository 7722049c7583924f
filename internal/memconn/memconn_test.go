package memconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func TestPipeTransfersInOrder(t *testing.T) {
	a, b := Pipe("x")
	defer a.Close()
	defer b.Close()
	want := make([]byte, 3*DefaultLimit+12345) // more than the bound: writers wait
	for i := range want {
		want[i] = byte(i * 7)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for off := 0; off < len(want); off += 100000 {
			if _, err := a.Write(want[off:min(off+100000, len(want))]); err != nil {
				t.Error(err)
				return
			}
		}
		a.Close()
	}()
	got, err := io.ReadAll(iotest.HalfReader(b))
	wg.Wait()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, %v; want %d equal bytes", len(got), err, len(want))
	}
}

func TestTryWrite(t *testing.T) {
	a, b := Pipe("x")
	defer b.Close()
	w := a.(interface{ TryWrite([]byte) (int, bool) })
	big := make([]byte, DefaultLimit+10)
	if n, ok := w.TryWrite(big); !ok || n != DefaultLimit {
		t.Fatalf("TryWrite = %d, %v; want %d, true", n, ok, DefaultLimit)
	}
	if n, ok := w.TryWrite([]byte("x")); ok || n != 0 {
		t.Fatalf("TryWrite on a full queue = %d, %v", n, ok)
	}
	buf := make([]byte, 10)
	if n, err := b.Read(buf); err != nil || n != 10 {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if n, ok := w.TryWrite([]byte("0123456789abc")); !ok || n != 10 {
		t.Fatalf("TryWrite after a read = %d, %v; want 10, true", n, ok)
	}
	a.Close()
	if n, ok := w.TryWrite([]byte("x")); ok || n != 0 {
		t.Fatalf("TryWrite after Close = %d, %v", n, ok)
	}
}

func TestCloseAndDeadlines(t *testing.T) {
	a, b := Pipe("x")
	a.Write([]byte("tail"))
	a.Close()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "tail" {
		t.Fatalf("after Close: read %q, %v; want the queued bytes, then EOF", got, err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write to a closed pipe: %v", err)
	}

	c, d := Pipe("y")
	defer c.Close()
	defer d.Close()
	d.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := d.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v", err)
	}
	d.SetReadDeadline(time.Time{})
	c.Write(make([]byte, DefaultLimit))
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if n, err := c.Write([]byte("x")); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a full pipe past its deadline: %d, %v", n, err)
	}
	// A reader blocked without a deadline is woken by a deadline set later.
	e, f := Pipe("z")
	defer e.Close()
	errc := make(chan error, 1)
	go func() { _, err := f.Read(make([]byte, 1)); errc <- err }()
	f.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("blocked Read: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a blocked Read ignored a new deadline")
	}
}
