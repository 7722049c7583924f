package server

import "errors"

// Reasons Health gives for a server that does not serve its keys.
var (
	// ErrNoHashSpace: no manager (or peer) has sent a hash space yet.
	ErrNoHashSpace = errors.New("server: no hash space yet (no manager has answered)")
	// ErrNotAttached: the hash space does not list this server.
	ErrNotAttached = errors.New("server: not attached (run kumoctl MANAGER attach)")
	// ErrFault: the hash space lists this server as fault (it crashed,
	// restarted or was cut off, and was not attached since).
	ErrFault = errors.New("server: marked fault (run kumoctl MANAGER attach to bring it back)")
	// ErrStoreFull: the store's disk is full; writes are refused.
	ErrStoreFull = errors.New("server: store full: writes are refused until there is disk room")
	// ErrStoreCorrupt: the store returned damaged data (noteCorrupt).
	ErrStoreCorrupt = errors.New("server: store holds damaged data (stop it, run kumo-storetool repair, start it and attach it)")
	// ErrAway: the store was away longer than the garbage time and waits
	// for the attach's replace copy (see current.go).
	ErrAway = errors.New("server: away longer than the garbage time (-gX): waiting for the attach's replace")
)

// Health reports why the server does not serve its share of the keys, or
// nil when it does: its write hash space has it active, its store takes
// writes and is current. It answers the --http endpoint's /healthz, so
// that a load balancer or a supervisor sees a server the managers took
// out, or one that has not been attached yet.
func (s *Server) Health() error {
	if s.closed.Load() {
		return ErrClosed
	}
	w := s.whs.Load()
	switch {
	case s.corrupt.Load():
		return ErrStoreCorrupt
	case w.NumNodes() == 0 && s.mgrAnswer.Load() == 0:
		return ErrNoHashSpace
	case !w.Contains(s.cfg.Self): // or the managers attached nobody yet
		return ErrNotAttached
	case !w.IsActive(s.cfg.Self):
		return ErrFault
	case s.diskFull.Load():
		return ErrStoreFull
	case s.awayLong.Load():
		return ErrAway
	}
	return nil
}
