//go:build linux && !race

package rawio

import (
	"syscall"
	"unsafe"
)

// On Linux the reads and writes are raw system calls: a non-blocking
// socket call never blocks, so it need not tell the Go scheduler it is in
// a system call, and not telling it keeps a fully idle process's sysmon
// thread asleep (entering a system call wakes it, at the cost of a thread
// wake-up on another CPU, for every request that found the process idle).

func rawRead(fd int, b []byte) (int, error)  { return rawIO(syscall.SYS_READ, fd, b) }
func rawWrite(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, b) }

// rawIO is read(2) or write(2) (trap) of b on fd, with syscall.Read's
// results: -1 and the errno on failure.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(p), uintptr(len(b)))
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}
