package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"syscall"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
	"kumofs/store"
)

var errParams = &rpc.Error{Code: rpc.CodeProtocol, Msg: "bad parameters"}

// bufPool holds read buffers for store.Get.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return // do not pin big buffers
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

func (s *Server) serveRPC(req *rpc.Request) {
	switch req.Method {
	case wire.SrvGet:
		s.cmdGet.Add(1)
		s.handleGet(req)
	case wire.SrvGetIfModified:
		s.cmdGet.Add(1)
		s.handleGet(req)
	case wire.SrvGetRaw:
		s.handleGetRaw(req)
	case wire.SrvGetAccess:
		s.cmdGet.Add(1)
		s.handleGetAccess(req)
	case wire.SrvGetMulti:
		s.handleGetMulti(req)
	case wire.SrvStore, wire.SrvSet, wire.SrvArith, wire.SrvTouch, wire.SrvLease:
		s.cmdSet.Add(1)
		s.async(req, s.writeFn)
	case wire.SrvRemove, wire.SrvDelete:
		s.cmdDelete.Add(1)
		s.async(req, s.writeFn)
	case wire.SrvSetDirect:
		s.async(req, s.setDirectFn)
	case wire.SrvReplicateSet, wire.SrvReplicateDelete, wire.SrvReplicateBatch:
		s.async(req, s.replicateFn)
	case wire.SrvKeepAlive:
		if c, err := clockParam(req.Params, 0); err == nil {
			s.clk.ObserveFrom(wire.PeerOf(req.Conn), c)
		}
		req.Reply(msgpack.AppendNil)
	case wire.SrvHashSpaceSync:
		s.handleHashSpaceSync(req)
	case wire.SrvRelay:
		s.handleRelay(req)
	case wire.SrvHashSpaceRequest:
		w, r := s.whs.Load(), s.rhs.Load()
		req.Reply(func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = w.AppendSeed(b)
			return r.AppendSeed(b)
		})
	case wire.SrvReplaceCopyStart:
		s.handleReplaceCopyStart(req)
	case wire.SrvReplaceDeleteStart:
		s.handleReplaceDeleteStart(req)
	case wire.SrvGetStatus:
		s.handleGetStatus(req)
	case wire.SrvCreateBackup:
		s.handleBackup(req)
	case wire.SrvFlush:
		s.handleFlush(req)
	case wire.SrvSetConfig:
		req.Reply(func(b []byte) []byte { return msgpack.AppendUint(b, 0) })
	default:
		req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unknown method " + strconv.Itoa(int(req.Method))})
	}
}

// async runs f inline unless the store syncs every write, in which case
// writers must not queue behind each other's fdatasync: group commit needs
// them concurrent.
//
// f gets the batch of the read goroutine when it runs inline (nil on a
// goroutine of its own; see rpc.Request.Batch).
func (s *Server) async(req *rpc.Request, f func(*rpc.Request, *rpc.Batch)) {
	if s.cfg.Store.Sync == store.SyncAlways {
		go f(req, nil)
		return
	}
	f(req, req.Batch())
}

// clockParam reads the uint at index i of a params array.
func clockParam(p []byte, i int) (uint64, error) {
	n, p, err := msgpack.ReadArrayHeader(p)
	if err != nil || int(n) <= i {
		return 0, errParams
	}
	for ; i > 0; i-- {
		if p, err = msgpack.Skip(p); err != nil {
			return 0, errParams
		}
	}
	v, _, err := msgpack.ReadUint(p)
	return v, err
}

func expired(r *store.Record, now int64) bool {
	return r.Exptime != 0 && int64(r.Exptime) <= now
}

// live reports whether a stored record is visible to memcached clients.
func live(r *store.Record, now int64) bool { return !r.Tombstone && !expired(r, now) }

// readDBKeyParam reads the leading DBKey of a params array [DBKey, ...] and
// returns it with the rest of the parameters; both alias params.
func readDBKeyParam(params []byte) (dbkey, rest []byte, err error) {
	_, p, err := msgpack.ReadArrayHeader(params)
	if err != nil {
		return nil, nil, errParams
	}
	dbkey, p, err = msgpack.ReadRaw(p)
	if err != nil || len(dbkey) < 8 {
		return nil, nil, errParams
	}
	return dbkey, p, nil
}

// handleGet answers Get [DBKey] and GetIfModified [DBKey, if_time] with the
// DBValue, or nil for a missing, deleted or expired key.
func (s *Server) handleGet(req *rpc.Request) {
	dbkey, p, err := readDBKeyParam(req.Params)
	if err != nil {
		req.ReplyError(err)
		return
	}
	if err := s.readerCheck(dbkey); err != nil {
		req.ReplyError(err)
		return
	}
	start := time.Now()
	defer func() { s.m.getLat.Observe(since(start)) }()
	bp := getBuf()
	rec, buf, err := s.db.Get(dbkey, *bp)
	*bp = buf
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.m.miss.Inc()
		req.Reply(msgpack.AppendNil)
	case err != nil:
		req.ReplyError(s.storeError(err))
	case !s.visible(&rec, start.Unix()):
		s.m.miss.Inc()
		req.Reply(msgpack.AppendNil)
	default:
		s.m.get.Inc()
		s.noteRead(dbkey, &rec, start.Unix())
		if req.Method == wire.SrvGetIfModified {
			if since, _, err := msgpack.ReadUint(p); err == nil && rec.Clock <= since {
				req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
				putBuf(bp)
				return
			}
		}
		req.Reply(func(b []byte) []byte { return appendRecordValue(b, &rec) })
	}
	putBuf(bp)
}

// readerCheck refuses a read unless s is an active owner of the key in its
// read hash space: a server that restarted, or that was just attached and
// is still being filled, must not answer with what it has; nor one that
// did not run for a while, until a manager confirmed it is still one
// (pauseCheck).
func (s *Server) readerCheck(dbkey []byte) error {
	r := s.rhs.Load()
	if r.Empty() {
		return &rpc.Error{Msg: wire.MsgNotReady}
	}
	h, _, _ := wire.SplitDBKey(dbkey)
	if !r.Owners(h).ContainsActive(s.cfg.Self) {
		return &rpc.Error{Msg: wire.MsgObsolete}
	}
	return s.pauseCheck(time.Now().UnixNano())
}

// handleGetMulti answers SrvGetMulti: each key as handleGet would, in one
// reply. The entries are built in a pooled buffer first, so that the store
// is not read while the connection's write lock is held.
func (s *Server) handleGetMulti(req *rpc.Request) {
	n, p, err := msgpack.ReadArrayHeader(req.Params)
	if err != nil || n < 1 {
		req.ReplyError(errParams)
		return
	}
	nk, p, err := msgpack.ReadArrayHeader(p)
	if err != nil || nk > wire.MaxGetMulti {
		req.ReplyError(errParams)
		return
	}
	s.cmdGet.Add(uint64(nk))
	start := time.Now()
	now := start.Unix()
	out, bp := getBuf(), getBuf()
	o := msgpack.AppendArrayHeader(*out, nk)
	for i := uint32(0); i < nk; i++ {
		var dbkey []byte
		if dbkey, p, err = msgpack.ReadRaw(p); err != nil || len(dbkey) < 8 {
			*out = o
			putBuf(out)
			putBuf(bp)
			req.ReplyError(errParams)
			return
		}
		if len(o) > wire.GetMultiBudget || s.readerCheck(dbkey) != nil {
			o = msgpack.AppendUint(o, wire.GetMultiElsewhere)
			continue
		}
		rec, buf, err := s.db.Get(dbkey, *bp)
		*bp = buf
		switch {
		case errors.Is(err, store.ErrNotFound), err == nil && !s.visible(&rec, now):
			s.m.miss.Inc()
			o = msgpack.AppendNil(o)
		case err != nil:
			if errors.Is(err, store.ErrCorrupt) {
				s.noteCorrupt()
			}
			o = msgpack.AppendUint(o, wire.GetMultiFailed)
		default:
			s.m.get.Inc()
			s.noteRead(dbkey, &rec, now)
			o = appendRecordValue(o, &rec)
		}
	}
	*out = o
	req.Reply(func(b []byte) []byte { return append(b, o...) })
	s.m.getLat.Observe(since(start))
	putBuf(out)
	putBuf(bp)
}

// handleGetRaw answers GetRaw [DBKey] with the stored DBValue, tombstones
// included, or nil.
//
// A coordinator catching up asks [DBKey, true, whs]: its write hash space
// goes with it. The answer is then a barrier against this server deciding
// a write of the key as its former coordinator: the newer space is adopted
// first, and the record is read under the key's lock stripe, so a decision
// made here either is in the record read or, made after it, finds itself
// no longer the coordinator (decideAndReplicate). Without it, a write the
// old coordinator decided during the handover, acknowledged by replicas
// that had not yet heard of the new space, was overwritten by the new
// coordinator's next write on a base without it (hunt 28c: an acknowledged
// prepend lost right across an attach).
func (s *Server) handleGetRaw(req *rpc.Request) {
	dbkey, p, err := readDBKeyParam(req.Params)
	if err != nil {
		req.ReplyError(err)
		return
	}
	withID, p, err := msgpack.ReadBool(p)
	withID = withID && err == nil
	if withID && len(p) > 0 {
		if w, _, err := ring.ReadSeed(p); err == nil && !w.Empty() && w.Clock() > s.whs.Load().Clock() {
			s.adopt(w, nil)
		}
	}
	var mu *sync.Mutex
	if withID {
		mu = &s.stripes[binary.BigEndian.Uint64(dbkey)%numStripes]
		mu.Lock()
	}
	bp := getBuf()
	rec, buf, err := s.db.Get(dbkey, *bp)
	if mu != nil {
		mu.Unlock()
	}
	*bp = buf
	switch {
	case errors.Is(err, store.ErrNotFound):
		req.Reply(msgpack.AppendNil)
	case err != nil:
		req.ReplyError(s.storeError(err))
	default:
		if t, ok := s.asFlushed(&rec); ok {
			rec = t // stored before a flush_all: its tombstone
		}
		if !withID {
			req.Reply(func(b []byte) []byte { return appendRecordValue(b, &rec) })
			break
		}
		// The id of the write that made this version goes with it, and
		// those of the earlier writes of the key, as with a rebalance
		// copy: a coordinator catching up must answer their retries, not
		// apply them again. [DBValue, dedup | nil, dedupAt...]
		h := binary.BigEndian.Uint64(dbkey)
		id, e, ok := s.dedup.byVersionOf(h, rec.Clock)
		older := s.dedup.olderIDs(h, rec.Clock, nil)
		req.Reply(func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, uint32(2+len(older)))
			b = appendRecordValue(b, &rec)
			if ok {
				b = appendDedup(b, id, &e)
			} else {
				b = msgpack.AppendNil(b)
			}
			for i := range older {
				b = appendDedupAt(b, &older[i])
			}
			return b
		})
	}
	putBuf(bp)
}

// recordValue returns rec as a DBValue; its Data aliases rec.Value.
func recordValue(rec *store.Record) wire.Value {
	return wire.Value{Clock: rec.Clock, Flags: rec.Flags, Exptime: rec.Exptime, Data: rec.Value,
		Tombstone: rec.Tombstone, Stale: rec.Stale, TokenSent: rec.TokenSent, Cas: rec.Cas}
}

// valueRecord returns the record of v under dbkey; its Value aliases
// v.Data.
func valueRecord(dbkey []byte, v *wire.Value) store.Record {
	rec := store.Record{Key: dbkey, Value: v.Data, Clock: v.Clock, Flags: v.Flags, Exptime: v.Exptime,
		Tombstone: v.Tombstone, Stale: v.Stale && !v.Tombstone, TokenSent: v.TokenSent && !v.Tombstone}
	if !v.Tombstone {
		rec.Cas = v.Cas
	}
	return rec
}

// appendRecordValue appends rec's DBValue as a msgpack raw.
func appendRecordValue(b []byte, rec *store.Record) []byte {
	v := recordValue(rec)
	n := wire.DBValueLen(&v)
	b = msgpack.AppendRawHeader(b, uint32(n))
	return wire.AppendDBValue(b, &v)
}

// handleReplicate applies records sent by a coordinator or a rebalance,
// newest clock wins.
func (s *Server) handleReplicate(req *rpc.Request) {
	s.m.replicate.Inc()
	n, p, err := msgpack.ReadArrayHeader(req.Params)
	if err != nil || n < 2 {
		req.ReplyError(errParams)
		return
	}
	c, p, err := msgpack.ReadUint(p)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	s.clk.ObserveFrom(wire.PeerOf(req.Conn), c)
	switch req.Method {
	case wire.SrvReplicateSet: // [clock, flags, DBKey, DBValue, whs_clock?, dedup?]
		s.handleReplicateSet(req, n, p)
	case wire.SrvReplicateDelete: // [clock, flags, delete_clocktime, DBKey]
		if n < 4 {
			req.ReplyError(errParams)
			return
		}
		if p, err = msgpack.Skip(p); err != nil {
			req.ReplyError(errParams)
			return
		}
		ct, p, err := msgpack.ReadUint(p)
		if err != nil {
			req.ReplyError(errParams)
			return
		}
		dbkey, _, err := msgpack.ReadRaw(p)
		if err != nil || len(dbkey) < 8 {
			req.ReplyError(errParams)
			return
		}
		rec := store.Record{Key: dbkey, Clock: ct, Tombstone: true}
		s.notePurgeSeen(dbkey)
		ok, err := s.db.Update(&rec, newer(ct))
		if err != nil {
			req.ReplyError(s.storeError(err))
			return
		}
		if ok {
			s.recent.note(req.Conn, dbkey) // see repair.go
		}
		req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, ok) })
	case wire.SrvReplicateBatch: // [clock, [[DBKey, DBValue, (dedup)]...]]
		m, p, err := msgpack.ReadArrayHeader(p)
		if err != nil {
			req.ReplyError(errParams)
			return
		}
		applied := 0
		for i := uint32(0); i < m; i++ {
			var k, v []byte
			var pn uint32
			if pn, p, err = msgpack.ReadArrayHeader(p); err != nil || pn < 2 {
				req.ReplyError(errParams)
				return
			}
			if k, p, err = msgpack.ReadRaw(p); err != nil || len(k) < 8 {
				req.ReplyError(errParams)
				return
			}
			if v, p, err = msgpack.ReadRaw(p); err != nil {
				req.ReplyError(errParams)
				return
			}
			// A third element is the request id of the write that made
			// this version (appendDedup, or nil), remembered once it is
			// stored here, so that a retry of that write sent to this
			// new owner is answered, not applied again; further
			// elements are the earlier writes of the key whose effects
			// the version holds (appendDedupAt), remembered with it.
			var id uint64
			var de dedupEntry
			older := p
			for j := uint32(2); j < pn; j++ {
				if j == 2 && len(v) >= 8 && !msgpack.IsNil(p) {
					if id, de, err = readDedup(p); err != nil {
						id = 0
					}
				}
				if p, err = msgpack.Skip(p); err != nil {
					req.ReplyError(errParams)
					return
				}
				if j == 2 {
					older = p
				}
			}
			ok, err := s.applyNewest(k, v)
			if err != nil {
				req.ReplyError(err)
				return
			}
			if ok {
				applied++
				h := binary.BigEndian.Uint64(k)
				if id != 0 {
					de.h, de.clock = h, binary.BigEndian.Uint64(v)
					s.dedup.put(id, de)
				}
				s.noteOlderIDs(h, older, int(pn)-3)
			}
		}
		req.Reply(func(b []byte) []byte { return msgpack.AppendUint(b, uint64(applied)) })
	}
}

// handleReplicateSet applies one record a coordinator replicates: the
// params after the clock, p, are [flags, DBKey, DBValue, whs_clock?,
// dedup?] (n counts the clock too).
func (s *Server) handleReplicateSet(req *rpc.Request, n uint32, p []byte) {
	if n < 4 {
		req.ReplyError(errParams)
		return
	}
	p, err := msgpack.Skip(p)
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
	if err != nil || len(dbval) < 8 {
		req.ReplyError(errParams)
		return
	}
	var id uint64
	var e dedupEntry
	var older []byte // the earlier writes' ids (appendDedupAt), n-6 of them
	if n >= 5 {
		// Fencing: a coordinator deciding under an older write hash
		// space than ours may no longer be the coordinator (it may be
		// cut off from the managers); refuse, so that it cannot
		// acknowledge a write the current coordinator does not see.
		wc, rest, err := msgpack.ReadUint(p)
		if err == nil && wc < s.whs.Load().Clock() {
			req.ReplyError(&rpc.Error{Msg: wire.MsgObsolete})
			return
		}
		if err == nil && n >= 6 {
			// The write's request id: remembered with its outcome once
			// stored, so that a retry after the coordinator's death is
			// answered with it rather than applied again (see
			// dedupTable).
			if id, e, err = readDedup(rest); err != nil {
				id = 0
			}
			if n > 6 {
				older, _ = msgpack.Skip(rest)
			}
		}
	}
	if id != 0 {
		// Noted as pending before the record is stored, under the key's
		// lock stripe, as on a coordinator, so that a kill in between
		// cannot lose it (see dedupFile).
		e.h, e.clock = binary.BigEndian.Uint64(dbkey), binary.BigEndian.Uint64(dbval)
		stripe := int(e.h % numStripes)
		s.stripes[stripe].Lock()
		s.dedup.begin(stripe, id, &e, dbkey)
	}
	ok, newer, err := s.applyReplicated(dbkey, dbval, n >= 5)
	if id != 0 {
		// Remembered unless the replica keeps a newer version (an
		// unacknowledged leftover the coordinator re-stamps above): then
		// this write is not stored here until it comes again.
		stripe := int(e.h % numStripes)
		if err == nil && newer == 0 {
			s.dedup.commit(stripe, id, e)
		} else {
			s.dedup.abort(stripe)
		}
		s.stripes[stripe].Unlock()
	}
	if err == nil && newer == 0 && older != nil {
		// This version holds the effects of the key's earlier writes
		// whose own replications may come after it (see recentIDs).
		s.noteOlderIDs(binary.BigEndian.Uint64(dbkey), older, int(n)-6)
	}
	if err == nil && ok {
		s.recent.note(req.Conn, dbkey) // see repair.go
	}
	switch {
	case err != nil:
		req.ReplyError(err)
	case newer != 0:
		req.Reply(func(b []byte) []byte { return msgpack.AppendUint(b, newer) })
	default:
		req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, ok) })
	}
}

// applyReplicated stores a replicated DBValue under dbkey, newest clock
// wins, and reports whether it was stored. For a kumo coordinator (kumo:
// it sent the whs clock), newer is the clock of a newer version kept
// here instead (an unacknowledged write of an earlier coordinator,
// stamped by a clock that ran ahead), 0 if none, so that it re-stamps its
// write above it instead of acknowledging a write this owner does not
// serve.
func (s *Server) applyReplicated(dbkey, dbval []byte, kumo bool) (ok bool, newer uint64, err error) {
	if ok, err = s.applyNewest(dbkey, dbval); err != nil || ok || !kumo {
		return ok, 0, err
	}
	bp := getBuf()
	cur, buf, gerr := s.db.Get(dbkey, *bp)
	*bp = buf
	putBuf(bp)
	if v, perr := wire.ParseDBValue(dbval); gerr == nil && perr == nil &&
		(cur.Clock > v.Clock || cur.Clock == v.Clock && !sameVersion(&cur, &v)) {
		// An equal stamp on a different version was another writer's
		// (a gateway's direct set, wire.SrvSetDirect): re-stamped above
		// too, or the owners would keep different values at one clock.
		s.log.Debugf("replicate: %q at clock %x kept over %x", dbkey[8:], cur.Clock, v.Clock)
		return false, cur.Clock, nil
	}
	return false, 0, nil
}

// sameVersion reports whether rec holds the version v describes (same
// clock assumed): a write sent again, not another writer's.
func sameVersion(rec *store.Record, v *wire.Value) bool {
	if rec.Tombstone || v.Tombstone {
		return rec.Tombstone && v.Tombstone
	}
	return rec.Flags == v.Flags && rec.Exptime == v.Exptime && rec.Stale == v.Stale &&
		rec.TokenSent == v.TokenSent && rec.Cas == v.Cas && bytes.Equal(rec.Value, v.Data)
}

// newer is the newest-clock-wins predicate.
func newer(ct uint64) func(old *store.Record) bool {
	return func(old *store.Record) bool { return old == nil || old.Clock < ct }
}

// newerValue is newer for a value (not a tombstone) stamped ct: it also
// wins over a tombstone stamped with the same clock. A flush point is its
// server's own clock, and values stamped below it are gone, not the ones
// stamped at it: another server's write made after the flush_all may carry
// the very clock of this server's flush sweep tombstones, and must not lose
// that tie here while its coordinator serves it. (Between a delete and a
// write of two coordinators with equal clocks either order is right; this
// one is the same everywhere.)
func newerValue(ct uint64) func(old *store.Record) bool {
	return func(old *store.Record) bool { return old == nil || old.Clock < ct || old.Clock == ct && old.Tombstone }
}

// applyNewest stores an encoded DBValue under dbkey if it is newer than what
// is there (for a value: or a tombstone stamped with its clock, newerValue).
func (s *Server) applyNewest(dbkey, dbval []byte) (bool, error) {
	v, err := wire.ParseDBValue(dbval)
	if err != nil {
		return false, errParams
	}
	s.notePurgeSeen(dbkey)
	if s.flushed(v.Clock, v.Tombstone) {
		return s.applyFlushed(dbkey) // stored before a flush_all: gone
	}
	rec := valueRecord(dbkey, &v)
	pred := newer(v.Clock)
	if !v.Tombstone {
		pred = newerValue(v.Clock)
	}
	ok, err := s.db.Update(&rec, pred)
	if err != nil {
		return false, s.storeError(err)
	}
	s.maybeGrow()
	return ok, nil
}

// storeError turns a failure of the store (or of a server file) into the
// error a peer gets, and through a gateway a memcached client: the store's
// own sentinel when it is one, else a fixed text, never a file path. The
// full error goes to the log, at most once every storeErrorLogEvery. A
// full disk and damaged data are also noted, to be reported to the
// managers.
func (s *Server) storeError(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		s.noteDiskFull()
		return &rpc.Error{Msg: wire.MsgDiskFull}
	}
	if errors.Is(err, store.ErrCorrupt) {
		s.noteCorrupt()
	}
	for _, e := range []error{store.ErrCorrupt, store.ErrClosed, store.ErrFull, store.ErrInvalid, ErrClosed} {
		if errors.Is(err, e) {
			return &rpc.Error{Msg: e.Error()}
		}
	}
	now := time.Now().UnixNano()
	if last := s.storeErrLogged.Load(); now-last >= int64(storeErrorLogEvery) && s.storeErrLogged.CompareAndSwap(last, now) {
		s.log.Errorf("store: %v", err)
	}
	return &rpc.Error{Msg: "store: I/O error (see the server's log)"}
}

// storeErrorLogEvery spaces out the log lines of store errors that a
// failing disk would otherwise repeat for every request.
const storeErrorLogEvery = 10 * time.Second

func (s *Server) handleHashSpaceSync(req *rpc.Request) {
	sp, err := wire.ReadSpaces(req.Params, 2)
	if err != nil {
		req.ReplyError(errParams)
		return
	}
	s.clk.Observe(sp.Clock)
	w, r := sp.W, sp.R
	if s.adopt(w, r) {
		req.Reply(func(b []byte) []byte { return msgpack.AppendBool(b, true) })
		return
	}
	req.Reply(msgpack.AppendNil)
}
