package wire

import (
	"testing"

	"kumofs/internal/cli"
)

// Ensure that --version and the version the daemons report agree.
func TestVersionsAgree(t *testing.T) {
	if cli.Version != Version {
		t.Fatalf("internal/cli.Version %q, kumo/wire.Version %q", cli.Version, Version)
	}
}
