package server

import (
	"context"
	"os"
	"sync"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/store"
)

// replFlags returns the kumostat replstat bits.
func (s *Server) replFlags() uint64 {
	var f uint64
	w := s.whs.Load()
	active := false
	for _, n := range w.Nodes() {
		if n.Addr == s.cfg.Self && n.Active {
			active = true
		}
	}
	if !active {
		f |= wire.ReplInactive
	}
	if r := s.rhs.Load(); w.Clock() != r.Clock() || !w.Equal(r) {
		f |= wire.ReplWait
	}
	return f | uint64(s.replState.Load())
}

func (s *Server) handleGetStatus(req *rpc.Request) {
	code, err := clockParam(req.Params, 0)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	u := func(v uint64) { req.Reply(func(b []byte) []byte { return msgpack.AppendUint(b, v) }) }
	switch code {
	case wire.StatPID:
		u(uint64(os.Getpid()))
	case wire.StatUptime:
		u(uint64(time.Since(s.start).Seconds()))
	case wire.StatTime:
		u(uint64(time.Now().Unix()))
	case wire.StatVersion:
		req.Reply(func(b []byte) []byte { return msgpack.AppendString(b, "kumo "+wire.Version) })
	case wire.StatCmdGet:
		u(s.cmdGet.Load())
	case wire.StatCmdSet:
		u(s.cmdSet.Load())
	case wire.StatCmdDelete:
		u(s.cmdDelete.Load())
	case wire.StatDBItems:
		u(uint64(s.db.Len()))
	case wire.StatDBLive:
		st := s.db.Stats()
		u(st.Records - min(st.Tombstones, st.Records))
	case wire.StatClockTime:
		u(s.clk.Current())
	case wire.StatRHS:
		hs := s.rhs.Load()
		req.Reply(hs.AppendSeed)
	case wire.StatWHS:
		hs := s.whs.Load()
		req.Reply(hs.AppendSeed)
	case wire.StatReplace:
		u(s.replFlags())
	case wire.StatCurrentSince:
		u(uint64(max(s.stintSince(time.Now()), 0)))
	case wire.StatCurrentUntil:
		u(uint64(max(s.currentUntil(time.Now()), 0)))
	case wire.StatDBBytes:
		// Tombstones (deleted and flushed keys kept until the garbage
		// time) are not items: memcached's bytes falls to 0 after
		// flush_all.
		st := s.db.Stats()
		u(st.LiveBytes - min(st.TombBytes, st.LiveBytes))
	case wire.StatDBDeadSize:
		u(uint64(s.db.Stats().DeadBytes))
	case wire.StatStreamPort:
		u(s.streamPort())
	case wire.StatCopyTime:
		u(s.copyTime.Load())
	default:
		req.Reply(msgpack.AppendNil)
	}
}

// handleBackup writes a consistent copy of the store to <-s path>-<suffix>
// in the background: kumofs answers at once too.
func (s *Server) handleBackup(req *rpc.Request) {
	_, p, err := msgpack.ReadArrayHeader(req.Params)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	suffix, _, err := msgpack.ReadRaw(p)
	if err != nil || len(suffix) == 0 {
		req.ReplyError(&rpc.Error{Msg: "empty suffix"})
		return
	}
	if err := wire.CheckBackupSuffix(suffix); err != nil {
		req.ReplyError(&rpc.Error{Msg: err.Error()})
		return
	}
	dst := s.cfg.StorePath + "-" + string(suffix)
	s.repl.Add(1)
	go func() {
		defer s.repl.Done()
		// A value stored before a flush_all goes into the copy as the
		// tombstone its sweep leaves: a backup taken before the sweep
		// finished, or restored without the flush file, must not
		// bring it back.
		err := s.db.BackupFunc(dst, func(r *store.Record) bool {
			if t, ok := s.asFlushed(r); ok {
				*r = t
			}
			return true
		})
		if err != nil {
			s.log.Errorf("backup to %s failed: %v", dst, err)
			return
		}
		s.log.Infof("backup written: %s", dst)
	}()
	req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
}

// notifyManagers sends a replace progress message to every manager at
// once, each retried for about 10 s, and returns when all are done; the one
// that started the replace recognises its replace time, others ignore it.
// (One after the other, a first manager that was down held the notice
// back from the one running the replace for those 10 s, every phase.)
func (s *Server) notifyManagers(method uint32, args func([]byte) []byte) {
	var wg sync.WaitGroup
	for _, m := range s.mgrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.notifyManager(m, method, args)
		}()
	}
	wg.Wait()
}

// notifyManager sends one progress message to m, retrying 20 times.
func (s *Server) notifyManager(m *rpc.Client, method uint32, args func([]byte) []byte) {
	for attempt := 0; attempt < 20 && !s.closed.Load(); attempt++ {
		ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
		res, err := m.Call(ctx, method, args)
		cancel()
		if err == nil {
			res.Release()
			return
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
