//go:build !unix

package daemon

// fileLimit is unknown here.
func fileLimit() (uint64, bool) { return 0, false }
