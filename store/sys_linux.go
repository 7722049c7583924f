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

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14), not in package syscall.
const madvPopulateWrite = 23

// populateWrite faults b in writable with one call instead of a fault per
// page; an error (an older kernel) only means the pages fault one by one.
func populateWrite(b []byte) error { return syscall.Madvise(b, madvPopulateWrite) }
