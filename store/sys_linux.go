//go:build linux

package store

import (
	"os"
	"syscall"
)

func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// fallocate reserves [off, off+n) so writes through the mapping cannot
// hit ENOSPC (which would be a SIGBUS).
func fallocate(f *os.File, off, n int64) error { return syscall.Fallocate(int(f.Fd()), 0, off, n) }

// madviseRandom turns off readahead on the mapping: lookups are random.
func madviseRandom(b []byte) { _ = syscall.Madvise(b, syscall.MADV_RANDOM) }
