package server

import "path/filepath"

// A server whose disk is full cannot store writes. It tells the managers
// in its keepalives, and they mark it fault like a lost server, so that the
// other owners carry on without it; once there is room again it says so and
// shows up as a newcomer, to be attached (automatically with -a) and
// brought up to date.

// A server whose store returns damaged data (store.ErrCorrupt: a record or
// the index failed its checks, from a bad disk or a file changed by hand)
// reports that as well, and the managers mark it fault for good, so that
// clients are served by the other owners instead of failing on the damaged
// keys. It stays so until it is stopped, repaired (kumo-storetool repair),
// started and attached again.

// noteCorrupt records that the store returned damaged data.
func (s *Server) noteCorrupt() {
	if !s.corrupt.Swap(true) {
		select {
		case s.kaNow <- struct{}{}: // tell the managers now
		default:
		}
		s.log.Errorf("store %s holds damaged data; reporting the server to the managers as fault: stop it, run kumo-storetool repair %s, start it and attach it", s.cfg.StorePath, s.cfg.StorePath)
	}
}

// freeToRecover is the free space at which a full server takes writes again.
const freeToRecover = 4 << 20

// noteDiskFull records that a store write failed for lack of space.
func (s *Server) noteDiskFull() {
	if !s.diskFull.Swap(true) {
		s.log.Errorf("store: no space left on device; reporting to the managers until there is room again")
	}
}

// checkDiskRoom clears the full state once the store's file system has
// room again.
func (s *Server) checkDiskRoom() {
	if !s.diskFull.Load() {
		return
	}
	path, err := filepath.EvalSymlinks(s.cfg.StorePath)
	if err != nil {
		path = s.cfg.StorePath
	}
	if free, ok := diskFree(filepath.Dir(path)); ok && free >= freeToRecover {
		s.diskFull.Store(false)
		s.log.Infof("store: %d bytes free again; reporting the server healthy", free)
	}
}
