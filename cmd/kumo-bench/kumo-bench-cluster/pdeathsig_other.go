//go:build !linux

package main

import "syscall"

// childAttr: elsewhere there is no parent-death signal; the deferred
// cleanup alone stops memcached.
func childAttr() *syscall.SysProcAttr { return nil }
