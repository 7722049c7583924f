//go:build !linux

package main

import (
	"errors"
	"os"
)

// isTerminal reports whether fd is a character device (a terminal, most
// likely).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// termSize is unknown here; the caller falls back to $COLUMNS/$LINES.
func termSize(f *os.File) (cols, rows int, ok bool) { return 0, 0, false }

// rawPolls is false: reads block until a line is entered.
const rawPolls = false

// makeRaw is not available here: q must be followed by Enter.
func makeRaw(f *os.File) (restore func(), err error) {
	return nil, errors.New("raw mode not supported on this system")
}
