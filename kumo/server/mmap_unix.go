//go:build unix

package server

import (
	"os"
	"syscall"
)

// mapShared maps the first n bytes of f read-write and shared: stores to
// the mapping reach the file (the page cache) without a system call.
func mapShared(f *os.File, n int) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
}

// unmap undoes mapShared.
func unmap(b []byte) error { return syscall.Munmap(b) }
