//go:build !unix

package rawio

import "net"

type writer struct{}

// Init reports false: raw writes are not implemented on this platform.
func (w *Writer) Init(c net.Conn) bool { return false }

// TryWrite writes nothing and reports false.
func (w *Writer) TryWrite(b []byte) (n int, ok bool) { return 0, false }
