package server

import (
	"path/filepath"
	"testing"

	"kumofs/kumo/wire"
	"kumofs/ring"
	"kumofs/store"
)

// Ensure that the purge of a store that was away drops its own old
// records of keys an authority owns but keeps every record stored from
// elsewhere since it became away, whatever its clock: the other servers'
// replace copies can reach it before its own copy start does, and purging
// them lost acknowledged writes on this server (this session's second
// hunt: 70 of 1000 keys read as misses after the attach).
func TestPurgeKeepsRecordsFromElsewhere(t *testing.T) {
	s, _ := startAlone(t, filepath.Join(t.TempDir(), "p.kch"))
	put := func(key string, clk uint64) {
		t.Helper()
		v := wire.Value{Clock: clk, Data: []byte("v")}
		if _, err := s.applyNewest(dbkey(key), wire.AppendDBValue(nil, &v)); err != nil {
			t.Fatal(err)
		}
	}
	put("old", 10)    // held from before the absence
	s.setAway()       // the absence is noticed
	put("copied", 11) // a replace copy from another owner, an old clock
	other, _ := ring.ParseAddr("127.0.0.1:1", 19800)
	w := ring.New([]ring.Node{{Addr: testSelf, Active: true}, {Addr: other, Active: true}}, s.clk.Now())
	if !s.beginPurgeNotes() {
		t.Fatal("beginPurgeNotes refused a first purge")
	}
	if s.beginPurgeNotes() {
		t.Fatal("a second purge was claimed while one is pending")
	}
	s.purgeStale(1000, s.start, w, map[ring.Addr]bool{other: true})
	for key, want := range map[string]bool{"old": false, "copied": true} {
		_, _, err := s.db.Get(dbkey(key), nil)
		if got := err == nil; got != want {
			t.Errorf("%s kept %v, want %v (%v)", key, got, want, err)
		} else if !got && err != store.ErrNotFound {
			t.Errorf("%s: %v", key, err)
		}
	}
	if s.awayLong.Load() || s.purging.Load() {
		t.Errorf("after the purge: away %v, noting %v", s.awayLong.Load(), s.purging.Load())
	}
	if !s.beginPurgeNotes() {
		t.Error("the next purge cannot be claimed")
	}
}
