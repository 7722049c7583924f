package server

import (
	"context"
	"encoding/binary"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
)

// readRawWithID decodes a SrvGetRaw reply asked with the request id:
// [DBValue, dedup | nil, dedupAt...], or a bare DBValue from an older
// server. id is 0 when the reply names no write; older starts at the first
// of the count dedupAt elements (see noteOlderIDs).
func readRawWithID(p []byte) (raw []byte, id uint64, e dedupEntry, older []byte, count int, err error) {
	if n, rest, aerr := msgpack.ReadArrayHeader(p); aerr == nil {
		if n < 1 {
			return nil, 0, e, nil, 0, errParams
		}
		if raw, rest, err = msgpack.ReadRaw(rest); err != nil || len(raw) < 8 {
			return nil, 0, e, nil, 0, errParams
		}
		if n >= 2 {
			if !msgpack.IsNil(rest) {
				if id, e, err = readDedup(rest); err != nil {
					return nil, 0, e, nil, 0, errParams
				}
			}
			if rest, err = msgpack.Skip(rest); err != nil {
				return nil, 0, e, nil, 0, errParams
			}
		}
		return raw, id, e, rest, max(int(n)-2, 0), nil
	}
	if raw, _, err = msgpack.ReadRaw(p); err != nil || len(raw) < 8 {
		return nil, 0, e, nil, 0, errParams
	}
	return raw, 0, e, nil, 0, nil
}

// catchUpNeeded reports whether s coordinates h under w without having been
// an active owner of h under r: during a rebalance, a new or recovered
// server does not hold the key's latest record yet, and a read-modify-write
// decided on its local copy would be wrong. With no active server in r (a
// first attach, or one after every server was fault) no copy is known to
// be current until the replace's copy is done, so every write needs a
// catch-up, which then fails with MsgNotReady and the gateway retries.
func (s *Server) catchUpNeeded(h uint64, w, r *ring.HashSpace) bool {
	if r == nil || r.Empty() {
		return r == nil || r.Clock() != w.Clock()
	}
	return r.Clock() != w.Clock() && !r.Owners(h).ContainsActive(s.cfg.Self)
}

// catchUp fetches the key's record from the active owners in the read hash
// space and applies it locally, newest clock wins.
func (s *Server) catchUp(dbkey []byte, h uint64, r *ring.HashSpace) error {
	w := s.whs.Load()
	o := r.Owners(h)
	var last error = &rpc.Error{Msg: wire.MsgNotReady}
	for i := 0; i < o.Len(); i++ {
		n := o.At(i)
		if !n.Active || n.Addr == s.cfg.Self {
			continue
		}
		c := s.peer(n.Addr)
		if c == nil {
			return ErrClosed
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CallTimeout)
		res, err := c.Call(ctx, wire.SrvGetRaw, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 3)
			b = msgpack.AppendRaw(b, dbkey)
			b = msgpack.AppendBool(b, true) // with the write's request id
			return w.AppendSeed(b)          // and ours: see handleGetRaw
		})
		cancel()
		if err != nil {
			s.m.rpcErrs.Count(rpc.ErrorKind(err))
			s.log.Debugf("catch up from %s: %v", n.Addr, err)
			last = err
			continue
		}
		defer res.Release()
		if msgpack.IsNil(res.Bytes()) {
			return nil
		}
		raw, id, de, older, count, err := readRawWithID(res.Bytes())
		if err != nil {
			return errParams
		}
		applied, err := s.applyNewest(dbkey, raw)
		if err != nil {
			return err
		}
		if id != 0 {
			// The write that made this version was applied: its retry,
			// which may be what we are catching up for, gets its outcome.
			de.h, de.clock = h, binary.BigEndian.Uint64(raw)
			s.dedup.put(id, de)
		}
		if applied {
			// So were the earlier writes of the key that the version
			// holds, if it is ours now.
			s.noteOlderIDs(h, older, count)
		}
		return nil
	}
	return last
}
