//go:build !linux

package memcache

import "errors"

// newPoller fails: the event loop is implemented for Linux only; elsewhere
// every connection is served by a goroutine of its own.
func newPoller() (poller, error) { return nil, errors.New("memcache: no event loop on this platform") }
