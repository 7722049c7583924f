//go:build unix && !linux

package store

import (
	"errors"
	"os"
)

func fdatasync(f *os.File) error { return f.Sync() }

// fallocate is unsupported here; the store then appends with pwrite.
func fallocate(f *os.File, off, n int64) error { return errors.ErrUnsupported }

func madviseRandom(b []byte) {}

func populateWrite(b []byte) error { return errors.ErrUnsupported }
