package server

import (
	"encoding/binary"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/store"
)

// handleSetDirect applies a plain set that a gateway stamped itself and
// sent to every owner of the key (wire.SrvSetDirect). The value is stored
// only where that gives every owner the same outcome as a set through the
// coordinator would:
//
//   - the gateway decided under the hash space this server writes and reads
//     by (the same clock for both: no rebalance under way, so the owners
//     the gateway sent to are all the owners, and no copy scan runs), and
//     still does once the value is stored (a scan that starts later sees
//     it);
//   - this server is an active owner of the key;
//   - the stamp is strictly newer than the version kept here (an equal
//     stamp may be another writer's: the two must not both win somewhere),
//     not before the flush point, and not a clock this server refuses as
//     too far ahead of its wall clock.
//
// Anything else answers false, and the gateway sends the set again through
// the coordinator, which re-stamps it above whatever the owners keep. The
// key's stripe lock orders the store with the coordinator's decisions.
//
// While two writers that stamped the same clock race, different owners
// can hold different values under that clock for a moment. So a read whose
// CAS unique the client sees goes to the first owner, where cas is decided
// too (kumo/gateway's firstRead), and to another only while the first does
// not answer (docs/architecture.md, "Direct sets"); an embedded gateway
// reads a plain get from its own server wherever it sits among the owners.
func (s *Server) handleSetDirect(req *rpc.Request) {
	n, p, err := msgpack.ReadArrayHeader(req.Params)
	if err != nil || n < 4 {
		req.ReplyError(errParams)
		return
	}
	ct, p, err := msgpack.ReadUint(p)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	dbkey, p, err := msgpack.ReadRaw(p)
	if err != nil || len(dbkey) < 8 {
		req.ReplyError(errParams)
		return
	}
	dbval, p, err := msgpack.ReadRaw(p)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	wc, _, err := msgpack.ReadUint(p)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	v, err := wire.ParseDBValue(dbval)
	if err != nil || v.Tombstone || v.Stale || v.TokenSent || v.Cas != 0 || v.Clock != ct {
		req.ReplyError(errParams)
		return
	}
	stored, err := s.setDirect(dbkey, &v, wc, s.clk.ObserveFrom(wire.PeerOf(req.Conn), ct) == nil)
	if err != nil {
		req.ReplyError(err)
		return
	}
	if stored {
		s.m.direct.Inc()
		s.recent.note(req.Conn, dbkey) // see repair.go
	} else {
		s.m.directRefused.Inc()
	}
	now := s.clk.Current()
	req.Reply(func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 2)
		b = msgpack.AppendBool(b, stored)
		return msgpack.AppendUint(b, now)
	})
}

// setDirect stores v under dbkey for handleSetDirect if the conditions
// there hold; clockOK says whether the stamp was an acceptable clock.
func (s *Server) setDirect(dbkey []byte, v *wire.Value, wc uint64, clockOK bool) (bool, error) {
	h := binary.BigEndian.Uint64(dbkey)
	if !clockOK || !s.directSpace(h, wc) || s.flushed(v.Clock, false) {
		return false, nil
	}
	rec := valueRecord(dbkey, v)
	s.notePurgeSeen(dbkey)
	mu := &s.stripes[int(h%numStripes)]
	mu.Lock()
	ok, err := s.db.Update(&rec, func(old *store.Record) bool { return old == nil || old.Clock < v.Clock })
	mu.Unlock()
	if err != nil {
		return false, s.storeError(err)
	}
	if ok {
		s.maybeGrow()
	}
	// A rebalance that began while the value was being stored may have
	// scanned past it: the coordinator's path widens to the new owners.
	if !ok || !s.directSpace(h, wc) {
		return false, nil
	}
	if s.whs.Load().Owners(h).IsCoordinator(s.cfg.Self) {
		s.cmdSet.Add(1) // counted once, where a set through the coordinator is
	}
	return true, nil
}

// directSpace reports whether this server writes and reads by the hash
// space of clock wc and is an active owner of h in it.
func (s *Server) directSpace(h, wc uint64) bool {
	w, r := s.whs.Load(), s.rhs.Load()
	return w.Clock() == wc && r.Clock() == wc && w.Owners(h).ContainsActive(s.cfg.Self)
}
