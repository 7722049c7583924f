//go:build !linux && !darwin && !freebsd && !dragonfly && !openbsd

package server

// diskFree cannot tell here: a server whose disk filled stays reported
// full until it is restarted.
func diskFree(dir string) (uint64, bool) { return 0, false }
