//go:build unix

package store

import "syscall"

// flock takes an exclusive, non-blocking lock on fd.
func flock(fd uintptr) error {
	err := syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == syscall.EWOULDBLOCK {
		return ErrLocked
	}
	return err
}

// mmap maps n bytes of fd from offset 0, shared and read-write. n may
// exceed the file size; touching pages past the end raises SIGBUS, so the
// store only touches offsets below its allocated size.
func mmap(fd uintptr, n int) ([]byte, error) {
	b, err := syscall.Mmap(int(fd), 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	madviseRandom(b)
	return b, nil
}

func munmap(b []byte) error { return syscall.Munmap(b) }
