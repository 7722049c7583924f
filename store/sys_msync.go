//go:build unix && !netbsd

package store

import (
	"syscall"
	"unsafe"
)

// msync writes the dirty pages of b (page-aligned start) to the file.
func msync(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, _, e := syscall.Syscall(syscall.SYS_MSYNC, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), syscall.MS_SYNC)
	if e != 0 {
		return e
	}
	return nil
}
