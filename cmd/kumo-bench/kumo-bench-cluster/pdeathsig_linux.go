//go:build linux

package main

import "syscall"

// childAttr makes a started memcached die with this process.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
