//go:build unix

package memcache

import "syscall"

// processCPU returns the process's user and system CPU time in microseconds.
func processCPU() (user, sys int64, ok bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0, false
	}
	return ru.Utime.Nano() / 1000, ru.Stime.Nano() / 1000, true
}
