//go:build !unix

package memcache

// cpuTimes reports nothing where getrusage is missing.
func cpuTimes() (user, sys int64, ok bool) { return 0, 0, false }
