package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	a, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestTryWrite: a small write goes through whole; against a peer that does
// not read, attempts never block and at some point take less than offered
// (or nothing), and everything they took arrives in order.
func TestTryWrite(t *testing.T) {
	a, b := tcpPair(t)
	var w Writer
	if !w.Init(a) {
		t.Fatal("Init: a TCP conn must support raw writes")
	}
	if n, ok := w.TryWrite([]byte("hello")); !ok || n != 5 {
		t.Fatalf("TryWrite = %d, %v; want 5, true", n, ok)
	}
	got := make([]byte, 5)
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(b, got); err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}

	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	var sent bytes.Buffer
	short := false
	for i := 0; i < 4096 && !short; i++ { // at most 256 MiB: the socket fills long before
		n, ok := w.TryWrite(chunk)
		sent.Write(chunk[:n])
		short = !ok || n < len(chunk)
	}
	if !short {
		t.Fatal("a peer that does not read never made a write come up short")
	}
	got = make([]byte, sent.Len())
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, sent.Bytes()) {
		t.Fatalf("peer read %d bytes, %v; want the %d bytes taken", len(got), err, sent.Len())
	}
}

func TestPipeUnsupported(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var w Writer
	if w.Init(a) {
		t.Fatal("Init(net.Pipe) = true")
	}
	if n, ok := w.TryWrite([]byte("x")); ok || n != 0 {
		t.Fatalf("TryWrite on an uninitialized Writer = %d, %v", n, ok)
	}
}

// TestTryRead: nothing to read is ErrWouldBlock (at once), data is read as
// it arrives, the peer's close is (0, nil), and a closed conn an error.
func TestTryRead(t *testing.T) {
	a, b := tcpPair(t)
	var r Reader
	if !r.Init(b) {
		t.Fatal("Init refused a TCP conn")
	}
	buf := make([]byte, 16)
	if n, err := r.TryRead(buf); n != 0 || err != ErrWouldBlock {
		t.Fatalf("empty socket: %d, %v; want ErrWouldBlock", n, err)
	}
	a.Write([]byte("hello"))
	var got []byte
	for deadline := time.Now().Add(10 * time.Second); len(got) < 5; {
		n, err := r.TryRead(buf)
		if err == ErrWouldBlock {
			if time.Now().After(deadline) {
				t.Fatalf("data never arrived; got %q", got)
			}
			time.Sleep(time.Millisecond) // polling a condition, with a deadline
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("TryRead: %d, %v", n, err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "hello" {
		t.Fatalf("read %q", got)
	}
	a.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		n, err := r.TryRead(buf)
		if err == ErrWouldBlock && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			continue
		}
		if n != 0 || err != nil {
			t.Fatalf("after the peer closed: %d, %v; want 0, nil", n, err)
		}
		break
	}
	b.Close()
	if _, err := r.TryRead(buf); err == nil || err == ErrWouldBlock {
		t.Fatalf("closed conn: %v, want an error", err)
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if r2 := new(Reader); r2.Init(p1) {
		t.Fatal("Init took a net.Pipe")
	}
}

// TestRead: Read waits until data arrives, returns what arrived, honours
// the conn's read deadline with the conn's own error, reports the peer's
// close as io.EOF and a closed conn as net.ErrClosed, each as the conn's
// Read would (a *net.OpError for "read").
func TestRead(t *testing.T) {
	a, b := tcpPair(t)
	var r Reader
	if !r.Init(b) {
		t.Fatal("Init refused a TCP conn")
	}
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
	type result struct {
		n   int
		err error
	}
	buf := make([]byte, 16)
	done := make(chan result, 1)
	go func() {
		n, err := r.Read(buf)
		done <- result{n, err}
	}()
	a.Write([]byte("hello"))
	if res := <-done; res.err != nil || string(buf[:res.n]) != "hello" {
		t.Fatalf("Read = %q, %v; want hello", buf[:res.n], res.err)
	}

	b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := r.Read(buf)
	var oe *net.OpError
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("Read past the deadline = %d, %v; want a read OpError for the deadline", n, err)
	}
	b.SetReadDeadline(time.Time{})

	a.Close()
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want io.EOF", n, err)
	}
	b.Close()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("Read on a closed conn = %d, %v; want a read OpError for net.ErrClosed", n, err)
	}
}

// TestWrite: Write writes all of a buffer far larger than the socket takes
// at once, waiting while the peer reads; it honours the write deadline
// against a peer that does not read and fails with the system call's error
// as a "write" OpError once the peer is gone.
func TestWrite(t *testing.T) {
	a, b := tcpPair(t)
	var w Writer
	if !w.Init(a) {
		t.Fatal("Init: a TCP conn must support raw writes")
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte, 1)
	go func() {
		b.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, len(big))
		n, _ := io.ReadFull(b, buf)
		got <- buf[:n]
	}()
	if n, err := w.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
	}
	if g := <-got; !bytes.Equal(g, big) {
		t.Fatalf("peer read %d bytes, not the %d written", len(g), len(big))
	}

	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	var oe *net.OpError
	n, err := w.Write(bytes.Repeat(big, 16)) // 64 MiB: more than the socket buffers take
	if n >= 16*len(big) || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write to a peer that does not read = %d, %v; want a write OpError for the deadline", n, err)
	}
	a.SetWriteDeadline(time.Time{})

	b.(*net.TCPConn).SetLinger(0)
	b.Close() // a reset
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := w.Write([]byte("x"))
		if err != nil {
			if !errors.As(err, &oe) || oe.Op != "write" || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
				t.Fatalf("Write after a reset: %v; want a write OpError for ECONNRESET or EPIPE", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes after the peer's reset never failed")
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}
