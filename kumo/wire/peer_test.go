package wire

import "testing"

func TestPeerNameNil(t *testing.T) {
	if got := PeerName(nil); got != "" {
		t.Fatalf("PeerName(nil) = %q, want empty", got)
	}
}
