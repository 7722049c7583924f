//go:build !unix

package memcache

import "net"

// rawWriter is a stub where raw socket writes are not implemented: every
// asynchronous reply is written by a goroutine of its own.
type rawWriter struct{}

func (w *rawWriter) init(nc net.Conn) {}

func (w *rawWriter) tryWrite(b []byte) (n int, ok bool) { return 0, false }
