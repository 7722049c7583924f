//go:build openbsd

package server

import "syscall"

// diskFree returns the bytes available to an unprivileged user on the file
// system holding dir.
func diskFree(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return 0, false
	}
	return uint64(st.F_bavail) * uint64(st.F_bsize), true
}
