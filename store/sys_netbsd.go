//go:build netbsd

package store

import "errors"

// NetBSD's package syscall has no msync (the kernel's is __msync13): keep
// the slot table in heap memory and write it with pwrite at checkpoints,
// as the tests do everywhere, so msync is never needed.
func init() { heapSlots = true }

func msync(b []byte) error { return errors.ErrUnsupported }
