//go:build unix

package daemon

import "syscall"

// fileLimit returns the most files the process may have open (the soft
// RLIMIT_NOFILE, which Go raises to the hard one at start).
func fileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return uint64(r.Cur), true
}
