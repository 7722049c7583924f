package server

import (
	"context"
	"os"
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
	case wire.StatDBBytes:
		u(uint64(s.db.Stats().LiveBytes))
	case wire.StatDBDeadSize:
		u(uint64(s.db.Stats().DeadBytes))
	case wire.StatStreamPort:
		u(s.streamPort())
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
	dst := s.cfg.StorePath + "-" + string(suffix)
	s.repl.Add(1)
	go func() {
		defer s.repl.Done()
		if err := s.db.Backup(dst); err != nil {
			s.log.Errorf("backup to %s failed: %v", dst, err)
			return
		}
		s.log.Infof("backup written: %s", dst)
	}()
	req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
}

// handleFlush implements flush_all across the cluster: [at_unix, clock].
// Every record stored before the flush point becomes a tombstone dated at
// that point, so neither a replica nor a rebalance can bring it back. at 0
// means now, by this server's clock (which has observed every write it
// holds, so every acknowledged earlier write is older).
func (s *Server) handleFlush(req *rpc.Request) {
	at, err := clockParam(req.Params, 0)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	if c, err := clockParam(req.Params, 1); err == nil {
		s.clk.Observe(c)
	}
	if at == 0 || int64(at) <= time.Now().Unix() {
		fc := s.clk.Now()
		if at != 0 {
			fc = at << 32
		}
		// Answer when the flush is done, so that a get right after
		// flush_all's OK misses (memcached's promise); a store so large
		// that it takes longer is answered after 2 s and finishes behind.
		done := make(chan struct{})
		go func() {
			s.flush(fc)
			close(done)
		}()
		go func() {
			t := time.NewTimer(2 * time.Second)
			defer t.Stop()
			select {
			case <-done:
			case <-t.C:
			}
			req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
		}()
		return
	}
	d := time.Until(time.Unix(int64(at), 0))
	s.flushMu.Lock()
	s.flushTimers = append(s.flushTimers, time.AfterFunc(d, func() { s.flush(at << 32) }))
	s.flushMu.Unlock()
	req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
}

func (s *Server) flush(fc uint64) {
	if s.closed.Load() {
		return
	}
	var keys [][]byte
	err := s.db.ForEach(func(r *store.Record) error {
		if !r.Tombstone && r.Clock < fc {
			keys = append(keys, append([]byte(nil), r.Key...))
		}
		return nil
	})
	if err != nil {
		s.log.Errorf("flush: %v", err)
		return
	}
	for _, k := range keys {
		rec := store.Record{Key: k, Clock: fc, Tombstone: true}
		if _, err := s.db.Update(&rec, newer(fc)); err != nil {
			s.log.Errorf("flush: %v", err)
			return
		}
	}
	s.log.Infof("flushed %d items", len(keys))
}

// notifyManagers sends a replace progress message to every manager; the one
// that started the replace recognises its replace time, others ignore it.
func (s *Server) notifyManagers(method uint32, args func([]byte) []byte) {
	for _, m := range s.mgrs {
		for attempt := 0; attempt < 20 && !s.closed.Load(); attempt++ {
			ctx, cancel := context.WithTimeout(s.ctx, 3*time.Second)
			res, err := m.Call(ctx, method, args)
			cancel()
			if err == nil {
				res.Release()
				break
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}
