//go:build !linux

package main

import "syscall"

// childAttr: elsewhere there is no parent-death signal; the deferred
// cleanup alone stops memcached.
func childAttr() *syscall.SysProcAttr { return nil }

// clientAttr puts kumo-bench in a session of its own (see clientSession).
func clientAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
