// Package rawio makes single non-blocking write attempts on sockets, for
// goroutines that must never block in Write (a connection's read loop, a
// completion running on another connection's read loop): they write what
// the socket takes at once and leave the rest to a goroutine that may
// block.
package rawio

// Writer makes non-blocking write attempts on one connection. Init it once;
// it is not safe for concurrent use (callers serialize their writes anyway).
type Writer struct {
	w writer
}
