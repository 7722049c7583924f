package main

import (
	"strings"
	"testing"
)

// Ensure that -I takes 1024 bytes up to 63 MiB: a larger value would not
// fit the servers' 64 MiB RPC frames.
func TestCheckItemSize(t *testing.T) {
	for _, tc := range []struct {
		n  int
		ok bool
	}{
		{1023, false}, {1024, true}, {1 << 20, true}, {63 << 20, true}, {63<<20 + 1, false}, {64 << 20, false}, {1 << 30, false},
	} {
		err := checkItemSize(tc.n)
		if (err == nil) != tc.ok {
			t.Errorf("checkItemSize(%d) = %v, want ok %v", tc.n, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "between 1024 bytes and 63m") {
			t.Errorf("checkItemSize(%d): %v", tc.n, err)
		}
	}
}
