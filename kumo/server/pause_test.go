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

// Ensure that a server that did not run for a while refuses reads until a
// manager has confirmed its write space again, also before its pause watch
// has noticed the stall, and serves them when the managers do not answer
// (hunt 27a: a SIGSTOPped server with an embedded gateway answered the
// gets queued meanwhile with old values and deleted keys).
func TestReadsAfterPause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mgr := ln.Addr().String()
	ln.Close() // a manager that refuses connections
	s, _ := startWith(t, Config{StorePath: filepath.Join(t.TempDir(), "s.kch"), Managers: []string{mgr}})
	waitUntil(t, "a failed keepalive", func() bool { return s.mgrFail.Load() != 0 })
	sec := int64(time.Second)
	cases := []struct {
		name                       string
		paused, confirm, fail, ans int64 // relative to now; 0 = unset
		sinceTick                  int64 // now - the watch's last tick
		want                       error
	}{
		{name: "no stall", confirm: -2 * sec, fail: -sec, sinceTick: 0, want: nil},
		{name: "stall seen, not confirmed since", paused: -sec / 2, confirm: -4 * sec, fail: -sec, want: errPaused},
		{name: "stall seen, confirmed since", paused: -sec / 2, confirm: -sec / 4, fail: -sec, want: nil},
		{name: "stall not seen yet", confirm: -4 * sec, fail: -sec, sinceTick: 3 * sec, want: errPaused},
		{name: "stall not seen yet, managers silent long", confirm: -10 * sec, fail: -4 * sec, ans: -5 * sec, sinceTick: 3 * sec, want: nil},
		{name: "stall seen, managers silent long", paused: -sec / 2, confirm: -10 * sec, fail: -4 * sec, ans: -5 * sec, want: nil},
		{name: "stall seen, managers failing since it", paused: -sec / 2, confirm: -10 * sec, fail: -sec / 4, ans: -5 * sec, want: errPaused},
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
		s.mgrConfirm.Store(abs(now, c.confirm))
		s.mgrFail.Store(abs(now, c.fail))
		s.mgrAnswer.Store(abs(now, c.ans))
		if got := s.pauseCheck(now); !errors.Is(got, c.want) && got != c.want {
			t.Errorf("%s: pauseCheck = %v, want %v", c.name, got, c.want)
		}
	}

	// Through ReadLocal, as an embedded gateway reads: refused after a
	// stall, served once a manager confirmed.
	s.pausedAt.Store(time.Now().UnixNano())
	s.mgrConfirm.Store(time.Now().UnixNano() - 4*sec)
	s.mgrFail.Store(time.Now().UnixNano())
	var re *rpc.Error
	if err := s.ReadLocal(dbkey("k"), func(*wire.Value) {}); !errors.As(err, &re) || re.Msg != wire.MsgNotReady {
		t.Fatalf("ReadLocal after a stall: %v, want %s", err, wire.MsgNotReady)
	}
	s.mgrConfirm.Store(time.Now().UnixNano())
	if err := s.ReadLocal(dbkey("k"), func(*wire.Value) {}); err != nil {
		t.Fatalf("ReadLocal once confirmed: %v", err)
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
