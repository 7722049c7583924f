//go:build linux

package main

import "syscall"

// childAttr makes a started memcached die with this process.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

// clientAttr puts kumo-bench in a session of its own (see clientSession)
// and makes it die with this process.
func clientAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
}
