//go:build unix && !linux

package localcluster

import "syscall"

// sysProcAttr puts the child in its own process group. Other systems have
// no parent-death signal; callers must stop their children on every exit
// path.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func signalGroup(pid int, sig syscall.Signal) { syscall.Kill(-pid, sig) }
