package server

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/ring"
	"kumofs/store"
)

// A server's store is current while the server is an active owner in its
// write hash space and receives every write and delete for its keys. A
// server away from that for longer than the garbage time (-gX) must not
// serve or copy what it holds from before: the other owners may have
// purged the tombstones of keys deleted meanwhile (and the expired
// versions that replaced older ones), and its old copies would bring them
// back. Such a server, whether restarted after that long (openStore keeps
// the store and marks it away) or running meanwhile (marked fault and
// attached later, paused with SIGSTOP, or out of disk room), counts as away
// (awayLong) and, when a replace copy makes it an owner again, purges its
// old records of the keys that a server current all the while owns
// (authorities, purgeStale); a whole cluster stopped together keeps every
// store.

// confirmFresh is how recent a manager's confirmation of our write space
// must be for the store to count as current.
const confirmFresh = 3 * time.Second

// isCurrent reports whether the store is current now: both our hash
// spaces have us active (the read space too: a server attached holds all
// its keys only once the replace copy that followed is done, and until
// then it must not count as current to the others' purge, which would
// drop their copies of keys it has not received yet) and a manager
// confirmed lately that it knows no newer one (its keepalive answer), or
// no manager answers at all (they are down or we are cut off: the space we
// hold is the last we know; a cluster whose managers were down for the
// garbage time must not discard every store at its next restart). A
// server that did not run for a while (SIGSTOP) is not current until a
// manager has answered again: its space may be long out of date.
func (s *Server) isCurrent(now time.Time) bool {
	w, r := s.whs.Load(), s.rhs.Load()
	if w == nil || !w.IsActive(s.cfg.Self) || r == nil || !r.IsActive(s.cfg.Self) {
		return false
	}
	if len(s.mgrs) == 0 {
		return true // no managers (tests): the space we hold is all there is
	}
	if s.confirmed(now) {
		return true
	}
	// No manager answers: for longer than confirmFresh (right after a
	// pause the first keepalives fail on the connections the managers
	// closed meanwhile, and the space we hold is the one from before).
	f := s.mgrFail.Load()
	return f != 0 && now.UnixNano()-f > int64(confirmFresh) && now.UnixNano()-s.mgrAnswer.Load() > int64(confirmFresh)
}

// confirmed reports whether a manager confirmed our write space lately.
func (s *Server) confirmed(now time.Time) bool {
	return now.UnixNano()-s.mgrConfirm.Load() < int64(confirmFresh)
}

// markCurrent records that the store is current (isCurrent): in memory
// (lastCurrent, for purgeStale) and as the store file's modification time,
// which openStore measures a restarted server's absence from. Writes
// through the shared mapping do not reliably move that time, and a server
// of a cluster that took no writes for the garbage time must not discard
// its store when it restarts (a whole cluster restarted after an idle hour
// would lose every key).
//
// A break shorter than the garbage time (a restart, a pause, a fault and
// attach) does not end the stint that StatCurrentSince reports: once the
// server is a reader again it holds every delete of its keys made
// meanwhile, from the replace copy, whose sources keep tombstones for the
// garbage time. Only a longer absence (away) starts a new one. Otherwise a
// rolling restart of the other servers made a long-away server find no one
// current since it left and keep its old copies of keys deleted meanwhile
// (hunt 26a: 139 of 400 deleted keys back).
func (s *Server) markCurrent() {
	now := time.Now()
	if !s.isCurrent(now) {
		if since := s.currentSince.Swap(0); since != 0 {
			s.prevSince.Store(since)
		}
		return
	}
	if s.awayLong.Load() {
		r := s.rhs.Load()
		if r == nil || !r.IsActive(s.cfg.Self) || !s.confirmed(now) {
			s.currentSince.Store(0)
			return // away: not current until purgeStale ran
		}
		// Still a reader, confirmed by a manager: the cluster did not
		// take it out while it did not run (a manager keepalive timeout
		// longer than the pause), so no replace will come to purge.
		s.awayLong.Store(false)
		s.endPurgeNotes()
		s.log.Warnf("server is current again without a replace: the managers kept it active while it did not run")
	}
	if s.currentSince.Load() == 0 {
		since := now.UnixNano()
		if prev := s.prevSince.Load(); prev != 0 && now.UnixNano()-s.lastCurrent.Load() < int64(s.cfg.GarbageMax) {
			since = prev // a short break: the same stint
		}
		s.currentSince.CompareAndSwap(0, since)
	}
	s.lastCurrent.Store(now.UnixNano())
	active := activeServers(s.whs.Load())
	s.activeWhenCurrent.Store(&active)
	err := os.WriteFile(s.cfg.StorePath+currentSuffix, appendCurrentFile(nil, now, s.currentSince.Load(), active), 0o644)
	if err == nil {
		err = os.Chtimes(s.cfg.StorePath, now, now) // for a binary older than the file
	}
	if err != nil {
		s.log.Warnf("store %s: cannot record that it is current: %v", s.cfg.StorePath, err)
	}
}

// stintSince is what StatCurrentSince reports: the start of the stint as
// current (markCurrent), also during a break shorter than the garbage time
// that the stint may go on after (a restart, a lapse of the managers'
// confirmation while another server is attached, its replace copy
// running), and 0 if there is none: the store was away, or was never
// current since it was (a new stint starts only once the server is a
// reader, with every key copied). currentUntil says until when the stint
// ran: the purge of a server attached at that moment (authorities) must
// find the others that were current all the while it was away, also if
// they are in a short break of their own.
//
// A stint that began when the server became a reader without a complete
// copy (copyComplete: every other owner of some of its keys was down, so
// it holds nothing from before) is reported stintSlack later than it began,
// so that the purge's slack for the ticks cannot take it for one that
// began before the asker left (hunt 26c: 300 acknowledged writes lost).
func (s *Server) stintSince(now time.Time) int64 {
	since := s.currentSince.Load()
	if since == 0 && !s.awayLong.Load() {
		if prev := s.prevSince.Load(); prev != 0 && now.UnixNano()-s.lastCurrent.Load() < int64(s.cfg.GarbageMax) {
			since = prev
		}
	}
	if since != 0 && s.stintPartial.Load() {
		since += int64(stintSlack(s.maintenanceTick()))
	}
	return since
}

// stintSlack is how much later than another server's last mark as current
// a stint may begin and still count as covering it (authorities): both are
// marked at maintenance ticks.
func stintSlack(tick time.Duration) time.Duration { return 2*tick + time.Second }

// currentUntil is what StatCurrentUntil reports: now while the store is
// current, else when it was last (the start of its break).
func (s *Server) currentUntil(now time.Time) int64 {
	if s.currentSince.Load() != 0 {
		return now.UnixNano()
	}
	return s.lastCurrent.Load()
}

// currentSuffix names the file, next to the store, that holds the time the
// store was last current, the start of that stint (unix nanoseconds, in
// decimal) and the servers active in the write space then (host:port,
// comma-separated), separated by spaces; files of older versions hold the
// first, or the first two, only.
const currentSuffix = ".current"

// appendCurrentFile appends the current file's content: last, since and
// the servers active then (none: the field is left out).
func appendCurrentFile(b []byte, last time.Time, since int64, active []ring.Addr) []byte {
	b = strconv.AppendInt(b, last.UnixNano(), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, max(since, 0), 10)
	for i, a := range active {
		if i == 0 {
			b = append(b, ' ')
		} else {
			b = append(b, ',')
		}
		b = append(b, a.String()...)
	}
	return b
}

// readActiveWhenCurrent returns the servers the current file of the store
// at path lists as active when it was last current; ok is false if it
// lists none (a file of an older version, or none at all).
func readActiveWhenCurrent(path string) (active []ring.Addr, ok bool) {
	b, err := os.ReadFile(path + currentSuffix)
	if err != nil {
		return nil, false
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return nil, false
	}
	for _, s := range strings.Split(f[2], ",") {
		a, err := ring.ParseAddr(s, 0)
		if err != nil {
			return nil, false
		}
		active = append(active, a)
	}
	return active, true
}

// activeServers lists the servers hs has active.
func activeServers(hs *ring.HashSpace) []ring.Addr {
	var out []ring.Addr
	for _, n := range hs.Nodes() {
		if n.Active {
			out = append(out, n.Addr)
		}
	}
	return out
}

// wasActiveWhenCurrent reports whether a was active in our write space
// when we were last current (true if we do not know).
func (s *Server) wasActiveWhenCurrent(a ring.Addr) bool {
	p := s.activeWhenCurrent.Load()
	return p == nil || slices.Contains(*p, a)
}

// readCurrentFile returns the times in the current file of the store at
// path: when it was last current, and since when it had been (0 if the
// file does not say); ok is false if there is no file or it does not hold
// a time.
func readCurrentFile(path string) (last time.Time, since int64, ok bool) {
	b, err := os.ReadFile(path + currentSuffix)
	if err != nil {
		return time.Time{}, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 || len(f) > 3 {
		return time.Time{}, 0, false
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || ns <= 0 {
		return time.Time{}, 0, false
	}
	if len(f) >= 2 {
		if since, err = strconv.ParseInt(f[1], 10, 64); err != nil || since < 0 || since > ns {
			since = 0
		}
	}
	return time.Unix(0, ns), since, true
}

// checkAway sets awayLong when our write space has not had us active
// since the store was last current, longer than the garbage time ago (a
// server marked fault, restarted and not yet attached, or out of disk
// room). keepAliveLoop sets it too, for a process that did not run for
// that long. A server active all along that merely missed the managers'
// confirmations (a loaded machine, -gX of seconds) is never away.
func (s *Server) checkAway() {
	w := s.whs.Load()
	if (w == nil || !w.IsActive(s.cfg.Self)) && time.Since(time.Unix(0, s.lastCurrent.Load())) > s.cfg.GarbageMax {
		s.setAway()
	}
}

// setAway marks the store away (awayLong) and starts noting the keys
// stored from elsewhere from then on, so that the purge that may come with
// the attach keeps every record copied or written to this server meanwhile,
// whatever its clock: the other servers' replace copies can reach it before
// its own copy start does.
func (s *Server) setAway() {
	s.prevSince.Store(0) // a new stint once it is current again
	s.purgeMu.Lock()
	if s.purgeSeen == nil {
		s.purgeSeen = make(map[string]struct{})
		s.purging.Store(true)
	}
	s.purgeMu.Unlock()
	s.awayLong.Store(true)
}

// purgeStale removes every record stamped before cutoff (this server's
// clock when the replace copy that makes it an owner again began) whose
// key an authority (a server current all the while, see authorities) owns
// in w, before the copy sends or serves any of them: what it held from
// before it was away, where a current copy exists. Records stored from
// elsewhere meanwhile are kept (their keys are noted from the copy's start
// on, beginPurgeNotes and notePurgeSeen: a copy this server held already
// is the current one), and its own writes carry newer clocks. since (when
// the store was last current) is for the log. Afterwards the store counts
// as current.
func (s *Server) purgeStale(cutoff uint64, since time.Time, w *ring.HashSpace, auth map[ring.Addr]bool) {
	defer s.endPurgeNotes()
	var keys [][]byte
	kept := 0
	err := s.db.ForEach(func(rec *store.Record) error {
		if rec.Clock >= cutoff {
			return nil
		}
		if h, _, ok := wire.SplitDBKey(rec.Key); ok && !ownedByAuthority(w.Owners(h), auth) {
			kept++
			return nil
		}
		keys = append(keys, append([]byte(nil), rec.Key...))
		return nil
	})
	if err != nil {
		s.log.Errorf("purge of stale records: %v", err)
		return
	}
	dropped := 0
	for _, k := range keys {
		ok, err := s.db.Delete(k, func(old *store.Record) bool {
			if old.Clock >= cutoff {
				return false
			}
			s.purgeMu.Lock()
			_, seen := s.purgeSeen[string(k)]
			s.purgeMu.Unlock()
			return !seen
		})
		if err != nil {
			s.log.Errorf("purge of stale records: %v", err)
			return
		}
		if ok {
			dropped++
		}
	}
	s.prevSince.Store(0)
	s.lastCurrent.Store(time.Now().UnixNano())
	s.awayLong.Store(false)
	s.log.Warnf("store was last current %v ago, longer than the garbage time %v: dropped %d records from before, so that deleted keys cannot come back; kept %d whose other owners were away too",
		time.Since(since).Round(time.Second), s.cfg.GarbageMax, dropped, kept)
}

// ownedByAuthority reports whether an active owner in o is in auth.
func ownedByAuthority(o ring.Owners, auth map[ring.Addr]bool) bool {
	for i := 0; i < o.Len(); i++ {
		if n := o.At(i); n.Active && auth[n.Addr] {
			return true
		}
	}
	return false
}

// beginPurgeNotes claims the purge for a replace copy that starts while
// the store is away, and makes sure the keys stored from elsewhere are
// noted (setAway started that). It reports false while another copy's
// purge is pending. endPurgeNotes ends the purge and the notes (purgeStale
// does when done).
func (s *Server) beginPurgeNotes() bool {
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	if s.purgePending {
		return false
	}
	s.purgePending = true
	if s.purgeSeen == nil {
		s.purgeSeen = make(map[string]struct{})
		s.purging.Store(true)
	}
	return true
}

func (s *Server) endPurgeNotes() {
	s.purgeMu.Lock()
	s.purging.Store(false)
	s.purgeSeen = nil
	s.purgePending = false
	s.purgeMu.Unlock()
}

// authorities returns the other active servers of w that have been
// current since this server was last current (last, within stintSlack:
// stints are marked at maintenance ticks; one that began incomplete
// reports its start later by as much, see stintSince) without a break
// longer than the garbage time, and at
// least until then (a server in a short break now holds every version
// from before it): they stored every write and delete of their keys while
// this one was away, or get them from their own copy, and may have purged
// the tombstones of deletes it missed. For a key one of them owns, this server's old copy
// is stale or the same as theirs, and the replace copy brings theirs
// (purgeStale drops it). A key none of them owns keeps its old copy: after
// a whole cluster went down, servers attached one at a time are current
// only since their attach, so none is an authority and no store loses a
// key whose other owners are not attached yet. A peer that does not
// answer, or is older than StatCurrentSince, is no authority.
func (s *Server) authorities(w *ring.HashSpace, last time.Time) map[ring.Addr]bool {
	limit := last.Add(stintSlack(s.maintenanceTick())).UnixNano()
	auth := make(map[ring.Addr]bool)
	for _, n := range w.Nodes() {
		if n.Addr == s.cfg.Self || !n.Active {
			continue
		}
		since, ok := s.peerStat(n.Addr, wire.StatCurrentSince)
		if !ok || since == 0 || int64(since) > limit {
			continue
		}
		if until, ok := s.peerStat(n.Addr, wire.StatCurrentUntil); ok && int64(until) >= last.UnixNano() {
			auth[n.Addr] = true
		}
	}
	return auth
}

// peerStat asks server a for the status code (a number); ok is false if
// it did not answer or does not know the code.
func (s *Server) peerStat(a ring.Addr, code uint64) (v uint64, ok bool) {
	c := s.peer(a)
	if c == nil {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CallTimeout)
	defer cancel()
	res, err := c.Call(ctx, wire.SrvGetStatus, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 1)
		return msgpack.AppendUint(b, code)
	})
	if err != nil {
		return 0, false
	}
	defer res.Release()
	v, _, err = msgpack.ReadUint(res.Bytes())
	return v, err == nil
}

// notePurgeSeen records, while purgeStale runs, that a record of dbkey
// from elsewhere (a copy, a replicated or direct write, whose clock may be
// older than the purge's cutoff) is about to be stored. Called before the
// store; one atomic load otherwise.
func (s *Server) notePurgeSeen(dbkey []byte) {
	if !s.purging.Load() {
		return
	}
	s.purgeMu.Lock()
	if s.purgeSeen != nil {
		s.purgeSeen[string(dbkey)] = struct{}{}
	}
	s.purgeMu.Unlock()
}
