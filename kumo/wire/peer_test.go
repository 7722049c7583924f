package wire

import "testing"

func TestPeerNameNil(t *testing.T) {
	if got := PeerName(nil); got != "" {
		t.Fatalf("PeerName(nil) = %q, want empty", got)
	}
}

func TestCheckBackupSuffix(t *testing.T) {
	for s, ok := range map[string]bool{"20261127": true, "a.b-c": true, "..": true, "": false, "a/b": false, "../x": false, "x\x00": false} {
		if err := CheckBackupSuffix([]byte(s)); (err == nil) != ok {
			t.Errorf("CheckBackupSuffix(%q) = %v, want ok %v", s, err, ok)
		}
	}
}
