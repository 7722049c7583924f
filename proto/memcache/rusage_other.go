//go:build !unix

package memcache

// processCPU reports nothing where getrusage is missing.
func processCPU() (user, sys int64, ok bool) { return 0, 0, false }
