//go:build unix && (!linux || race)

package rawio

import "syscall"

// Elsewhere, and under the race detector on Linux too, reads and writes
// are the ordinary system calls: the detector learns from their
// annotations that writing bytes to a socket happens before reading them,
// so goroutines of one process synchronized through a connection (a test
// and its fake server) are not reported as racing.

func rawRead(fd int, b []byte) (int, error)  { return syscall.Read(fd, b) }
func rawWrite(fd int, b []byte) (int, error) { return syscall.Write(fd, b) }
