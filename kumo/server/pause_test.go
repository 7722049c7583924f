package server

import (
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/rpc"
)

// Ensure that a server that did not run for a while refuses reads until it
// has synced with a manager after the stall, also before its pause watch
// has noticed the stall, and serves them when no manager answers for
// pauseSilent after it (hunt 27a: a SIGSTOPped server with an embedded
// gateway answered the gets queued meanwhile with old values and deleted
// keys).
func TestReadsAfterPause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mgr := ln.Addr().String()
	ln.Close() // a manager that refuses connections
	s, _ := startWith(t, Config{StorePath: filepath.Join(t.TempDir(), "s.kch"), Managers: []string{mgr}})
	sec := int64(time.Second)
	cases := []struct {
		name           string
		paused, synced int64 // relative to now; 0 = unset
		answer         int64
		sinceTick      int64 // now - the watch's last tick
		want           error
	}{
		{name: "no stall", synced: -2 * sec, answer: -sec, want: nil},
		{name: "stall seen, not synced since", paused: -sec / 2, synced: -4 * sec, answer: -4 * sec, want: errPaused},
		{name: "stall seen, synced since", paused: -sec / 2, synced: -sec / 4, answer: -sec / 4, want: nil},
		{name: "stall seen, answered but not synced since", paused: -sec / 2, synced: -4 * sec, answer: -sec / 4, want: errPaused},
		{name: "stall not seen yet", synced: -sec / 2, answer: -sec / 2, sinceTick: 3 * sec, want: errPaused},
		{name: "stall seen long ago, no manager since", paused: -6 * sec, synced: -10 * sec, answer: -10 * sec, want: nil},
		{name: "stall seen long ago, a manager answered since", paused: -6 * sec, synced: -10 * sec, answer: -sec, want: errPaused},
		// hunt 27c: silence before the stall (a second manager down) does
		// not count: only what follows its end.
		{name: "stall just seen, managers silent before it", paused: -sec / 2, synced: -10 * sec, answer: -10 * sec, want: errPaused},
	}
	abs := func(now, rel int64) int64 {
		if rel == 0 {
			return 0
		}
		return now + rel
	}
	for _, c := range cases {
		now := s.lastTick.Load() + c.sinceTick
		if c.sinceTick == 0 {
			now += int64(10 * time.Millisecond)
		}
		s.pausedAt.Store(abs(now, c.paused))
		s.mgrSynced.Store(abs(now, c.synced))
		s.mgrAnswer.Store(abs(now, c.answer))
		if got := s.pauseCheck(now); !errors.Is(got, c.want) && got != c.want {
			t.Errorf("%s: pauseCheck = %v, want %v", c.name, got, c.want)
		}
	}

	// Through ReadLocal, as an embedded gateway reads: refused after a
	// stall, served once a manager confirmed.
	s.pausedAt.Store(time.Now().UnixNano())
	s.mgrSynced.Store(time.Now().UnixNano() - 4*sec)
	s.mgrAnswer.Store(time.Now().UnixNano() - 4*sec)
	var re *rpc.Error
	if err := s.ReadLocal(dbkey("k"), func(*wire.Value) {}); !errors.As(err, &re) || re.Msg != wire.MsgNotReady {
		t.Fatalf("ReadLocal after a stall: %v, want %s", err, wire.MsgNotReady)
	}
	s.mgrSynced.Store(time.Now().UnixNano())
	if err := s.ReadLocal(dbkey("k"), func(*wire.Value) {}); err != nil {
		t.Fatalf("ReadLocal once synced: %v", err)
	}
}

// Ensure that a server without managers (tests, a lone server) is never
// refused reads for a stall.
func TestReadsAfterPauseNoManagers(t *testing.T) {
	s, _ := startAlone(t, filepath.Join(t.TempDir(), "s.kch"))
	s.pausedAt.Store(time.Now().UnixNano())
	if err := s.pauseCheck(time.Now().UnixNano() + 5*int64(time.Second)); err != nil {
		t.Fatalf("pauseCheck without managers: %v", err)
	}
}
