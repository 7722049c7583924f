package server

import (
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"kumofs/internal/logging"
	"kumofs/kumo/wire"
	"kumofs/ring"
)

// startAt starts a server whose Self is a free port of 127.0.0.1, so that
// other servers can reach it, with the given store.
func startAt(t *testing.T, path string) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	self, err := ring.ParseAddr(addr, 19800)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Self: self, Listen: addr, StorePath: path, Log: logging.New(io.Discard, logging.Info).With("server")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Ensure that a server coming back with a store sends the reader it
// rejoins the versions older than that reader's stint as current (it may
// lack them: it became a reader while the servers holding them were
// down, -a having detached them), and not the newer ones, which the
// reader stored itself. Reads served by such a reader missed those keys
// for good (hunt 26a: 285 of 900 acknowledged keys).
func TestReturningServerSendsWhatTheReaderMayLack(t *testing.T) {
	dir := t.TempDir()
	back, reader := startAt(t, filepath.Join(dir, "back.kch")), startAt(t, filepath.Join(dir, "reader.kch"))
	src := ring.New([]ring.Node{{Addr: back.cfg.Self}, {Addr: reader.cfg.Self, Active: true}}, 1)
	dst := ring.New([]ring.Node{{Addr: back.cfg.Self, Active: true}, {Addr: reader.cfg.Self, Active: true}}, 2)
	for _, s := range []*Server{back, reader} {
		s.whs.Store(dst)
		s.rhs.Store(src)
	}
	reader.rhs.Store(dst)
	reader.markCurrent() // a reader from now on
	stint := reader.currentSince.Load()
	if stint == 0 {
		t.Fatal("the reader is not current")
	}
	old := uint64(time.Now().Add(-time.Hour).Unix()) << 32
	newer := uint64(time.Now().Add(time.Hour).Unix()) << 32
	for key, ct := range map[string]uint64{"old": old, "newer": newer} {
		v := wire.Value{Clock: ct, Data: []byte(key)}
		if _, err := back.applyNewest(dbkey(key), wire.AppendDBValue(nil, &v)); err != nil {
			t.Fatal(err)
		}
	}
	if !back.replaceCopy(src, dst, false) {
		t.Fatal("the copy failed")
	}
	if rec, _, err := reader.db.Get(dbkey("old"), nil); err != nil || rec.Clock != old {
		t.Fatalf("the reader's old: %+v, %v; want the returning server's version", rec, err)
	}
	if _, _, err := reader.db.Get(dbkey("newer"), nil); err == nil {
		t.Fatal("a version newer than the reader's stint was sent too")
	}
}

// Ensure that a long-away server's purge counts as an authority another
// server in a short break only if that one was current at least until the
// long-away one was last (it holds every version from before), and one
// that is current now if its stint began before that.
func TestAuthoritiesInShortBreak(t *testing.T) {
	dir := t.TempDir()
	away, peer := startAt(t, filepath.Join(dir, "away.kch")), startAt(t, filepath.Join(dir, "peer.kch"))
	w := ring.New([]ring.Node{{Addr: away.cfg.Self, Active: true}, {Addr: peer.cfg.Self, Active: true}}, 1)
	last := time.Now().Add(-time.Minute) // when the long-away server was last current
	stint := last.Add(-time.Hour).UnixNano()
	for _, tc := range []struct {
		name    string
		current bool
		until   time.Time // the peer's break start, when not current
		want    bool
	}{
		{"current", true, time.Time{}, true},
		{"break after", false, last.Add(time.Second), true},
		{"break before", false, last.Add(-time.Second), false},
	} {
		if tc.current {
			peer.currentSince.Store(stint)
		} else {
			peer.currentSince.Store(0)
			peer.prevSince.Store(stint)
			peer.lastCurrent.Store(tc.until.UnixNano())
		}
		got := away.authorities(w, last)[peer.cfg.Self]
		if got != tc.want {
			t.Errorf("%s: authority %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Ensure that copyComplete finds a source for every key a returning
// server owns only when there is one (a reader, or every owner active and
// sending each other all they hold): with the other owners of some range
// down the writes it missed are nowhere to copy from, and its stint as
// current must end (hunt 26c: a server back from a 4 s
// break, attached while the others were down, was taken as holding every
// version and the others dropped 300 acknowledged writes).
func TestCopySourced(t *testing.T) {
	addr := func(i int) ring.Addr {
		a, _ := ring.ParseAddr("127.0.0.1:"+strconv.Itoa(19801+i), 19800)
		return a
	}
	space := func(n int, active ...int) *ring.HashSpace {
		var nodes []ring.Node
		for i := range n {
			nodes = append(nodes, ring.Node{Addr: addr(i), Active: slices.Contains(active, i)})
		}
		return ring.New(nodes, 1)
	}
	self := addr(0)
	for _, tc := range []struct {
		name       string
		src, dst   *ring.HashSpace
		downBefore ring.Addr // down already when self was last current
		want       bool
	}{
		{"others readers", space(3, 1, 2), space(3, 0, 1, 2), ring.Addr{}, true},
		{"one other reader", space(3, 1), space(3, 0, 1, 2), ring.Addr{}, true},
		{"no reader, every owner back", space(3), space(3, 0, 1, 2), ring.Addr{}, true},
		{"no read space, every owner back", ring.New(nil, 0), space(3, 0, 1, 2), ring.Addr{}, true},
		{"no reader, the others down", space(3), space(3, 0), ring.Addr{}, false},
		{"no reader, one down since before", space(3), space(3, 0, 1), addr(2), true},
		{"no reader, one down since before, one since", space(3), space(3, 0), addr(2), false},
		{"reader down in dst", space(3, 1), space(3, 0, 2), ring.Addr{}, false},
		{"some ranges without a reader or an owner", space(6, 1), space(6, 0, 1, 3, 4, 5), ring.Addr{}, false},
		{"every range with a reader", space(6, 1, 2, 3, 4, 5), space(6, 0, 1, 2, 3, 4, 5), ring.Addr{}, true},
	} {
		if got := copyComplete(tc.src, tc.dst, self, func(a ring.Addr) bool { return a != tc.downBefore }); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
