package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/ring"
	"kumofs/store"
)

// maxValue bounds what append/prepend may grow a value to.
const maxValue = 64 << 20

// itemSize is the size memcached gives an item (see wire.ItemOverhead).
func itemSize(keylen, vlen int, flags uint32) uint64 {
	n := uint64(keylen) + uint64(vlen) + wire.ItemOverhead
	if flags != 0 {
		n += wire.ItemFlagsOverhead
	}
	return n
}

// writeOp is one decoded memcached write, decided on the coordinator.
type writeOp struct {
	method  uint32
	mode    uint64 // wire.Op* for Set/Store
	dbkey   []byte
	val     wire.Value // incoming value (Store/Set)
	cas     uint64
	delta   uint64 // Arith
	decr    bool
	create  bool
	initial uint64
	exptime uint32 // Arith create / Touch
	want    bool   // Touch: return the value (gat)
	touch   bool   // Arith, Lease: set an existing item's exptime to newExp
	newExp  uint32
	lease   uint64 // Lease: wire.LeaseWin or wire.LeaseInvalidate
	reqID   uint64 // Arith, Store, Lease, Remove: the gateway's request id (0: none), see dedupTable
	limit   uint64 // Store: the item size limit of an append or prepend (0: none)

	// Set by decideAndReplicate for the Arith reply.
	created bool   // the item was missing and created
	oldExp  uint32 // the exptime the item had before
}

func (op *writeOp) parse(req *rpc.Request) error {
	op.method = req.Method
	n, p, err := msgpack.ReadArrayHeader(req.Params)
	if err != nil {
		return errParams
	}
	rd := func() (uint64, error) {
		var v uint64
		v, p, err = msgpack.ReadUint(p)
		return v, err
	}
	rdb := func() (bool, error) {
		var v bool
		v, p, err = msgpack.ReadBool(p)
		return v, err
	}
	rraw := func() ([]byte, error) {
		var v []byte
		v, p, err = msgpack.ReadRaw(p)
		return v, err
	}
	bad := func(e error) error {
		if e != nil {
			return errParams
		}
		return nil
	}
	switch req.Method {
	case wire.SrvStore: // [mode, DBKey, DBValue, cas, request_id, limit]
		if n < 3 {
			return errParams
		}
		var dbval []byte
		if op.mode, err = rd(); err != nil {
			return errParams
		}
		if op.dbkey, err = rraw(); err != nil {
			return errParams
		}
		if dbval, err = rraw(); err != nil {
			return errParams
		}
		if op.val, err = wire.ParseDBValue(dbval); err != nil || op.val.Tombstone {
			return errParams
		}
		if n >= 4 {
			op.cas, err = rd()
		}
		if err == nil && n >= 5 {
			op.reqID, err = rd()
		}
		if err == nil && n >= 6 {
			op.limit, err = rd()
		}
		return bad(err)
	case wire.SrvSet: // kumofs [op, DBKey, DBValue]: the CAS compare rides in the value's clock
		if n < 3 {
			return errParams
		}
		var dbval []byte
		if op.mode, err = rd(); err != nil {
			return errParams
		}
		if op.dbkey, err = rraw(); err != nil {
			return errParams
		}
		if dbval, err = rraw(); err != nil {
			return errParams
		}
		if op.val, err = wire.ParseDBValue(dbval); err != nil || op.val.Tombstone {
			return errParams
		}
		switch op.mode {
		case wire.OpSet, wire.OpSetAsync:
			op.mode = wire.OpSet
		case wire.OpCAS:
			op.cas = op.val.Clock
		default:
			return &rpc.Error{Code: rpc.CodeProtocol, Msg: "unsupported set operation"}
		}
		return nil
	case wire.SrvArith: // [DBKey, delta, decr, create, initial, exptime, (cas, touch, new_exptime, (request_id))]
		if n < 6 {
			return errParams
		}
		if op.dbkey, err = rraw(); err != nil {
			return errParams
		}
		if op.delta, err = rd(); err != nil {
			return errParams
		}
		if op.decr, err = rdb(); err != nil {
			return errParams
		}
		if op.create, err = rdb(); err != nil {
			return errParams
		}
		if op.initial, err = rd(); err != nil {
			return errParams
		}
		var e uint64
		if e, err = rd(); err != nil {
			return errParams
		}
		op.exptime = uint32(e)
		if n >= 9 {
			if op.cas, err = rd(); err != nil {
				return errParams
			}
			if op.touch, err = rdb(); err != nil {
				return errParams
			}
			e, err = rd()
			op.newExp = uint32(e)
		}
		if err == nil && n >= 10 {
			op.reqID, err = rd()
		}
		return bad(err)
	case wire.SrvTouch: // [DBKey, exptime, want_value]
		if n < 3 {
			return errParams
		}
		if op.dbkey, err = rraw(); err != nil {
			return errParams
		}
		var e uint64
		if e, err = rd(); err != nil {
			return errParams
		}
		op.exptime = uint32(e)
		op.want, err = rdb()
		return bad(err)
	case wire.SrvLease: // [DBKey, op, cas, touch, exptime, (request_id)]
		if n < 5 {
			return errParams
		}
		if op.dbkey, err = rraw(); err != nil {
			return errParams
		}
		if op.lease, err = rd(); err != nil {
			return errParams
		}
		if op.cas, err = rd(); err != nil {
			return errParams
		}
		if op.touch, err = rdb(); err != nil {
			return errParams
		}
		var e uint64
		e, err = rd()
		op.newExp = uint32(e)
		if err == nil && op.lease != wire.LeaseWin && op.lease != wire.LeaseInvalidate {
			return &rpc.Error{Code: rpc.CodeProtocol, Msg: "unknown lease operation"}
		}
		if err == nil && n >= 6 {
			op.reqID, err = rd()
		}
		return bad(err)
	case wire.SrvRemove: // [DBKey, cas, request_id]
		if n < 1 {
			return errParams
		}
		if op.dbkey, err = rraw(); err != nil {
			return errParams
		}
		if n >= 2 {
			op.cas, err = rd()
		}
		if err == nil && n >= 3 {
			op.reqID, err = rd()
		}
		return bad(err)
	case wire.SrvDelete: // kumofs [flags, DBKey]
		if n < 2 {
			return errParams
		}
		if _, err = rd(); err != nil {
			return errParams
		}
		op.dbkey, err = rraw()
		return bad(err)
	}
	return errParams
}

// handleWrite decides a write atomically under the key's stripe lock, stores
// it, replicates it to every other active owner and answers when all have
// stored it.
//
// sb is the batch of the read goroutine running it, or nil (see
// Server.replicate).
func (s *Server) handleWrite(req *rpc.Request, sb *rpc.Batch) {
	var op writeOp
	if err := op.parse(req); err != nil {
		req.ReplyError(err)
		return
	}
	if len(op.dbkey) < 8 {
		req.ReplyError(errParams)
		return
	}
	if op.method == wire.SrvStore && op.val.Clock != 0 {
		// The gateway's clock (see wire.SrvStore): the stamp below then
		// beats every direct set it sent.
		s.clk.ObserveFrom(wire.PeerOf(req.Conn), op.val.Clock)
	}
	h, _, _ := wire.SplitDBKey(op.dbkey)
	w, r, err := s.coordinatorCheck(h)
	if err != nil {
		req.ReplyError(err)
		return
	}
	if s.catchUpNeeded(h, w, r) {
		// Deciding needs the key's current record, which the old owners
		// hold: fetch it off the RPC read goroutine.
		go func() {
			if err := s.catchUp(op.dbkey, h, r); err != nil {
				req.ReplyError(err)
				return
			}
			s.decideAndReplicate((*rpcReply)(req), &op, h, w, r, nil)
		}()
		return
	}
	s.decideAndReplicate((*rpcReply)(req), &op, h, w, r, sb)
}

// writeReply is where the outcome of a write goes: the reply to its RPC
// request (rpcReply) or the completion of a local write (localReply).
type writeReply interface {
	fail(err error)
	status(rb *rpc.Batch, op *writeOp, status int, ct uint64, extra func([]byte) []byte)
}

// rpcReply answers a write's RPC request.
type rpcReply rpc.Request

func (r *rpcReply) fail(err error) { (*rpc.Request)(r).ReplyError(err) }

func (r *rpcReply) status(rb *rpc.Batch, op *writeOp, status int, ct uint64, extra func([]byte) []byte) {
	replyStatus((*rpc.Request)(r), rb, op, status, ct, extra)
}

// decideAndReplicate is the second half of handleWrite; rep gets the
// outcome.
func (s *Server) decideAndReplicate(rep writeReply, op *writeOp, h uint64, w, r *ring.HashSpace, sb *rpc.Batch) {
	now := time.Now().Unix()
	stripe := int(h % numStripes)
	mu := &s.stripes[stripe]
	mu.Lock()
	if cur := s.whs.Load(); cur != w {
		// The write space changed since coordinatorCheck: a new
		// coordinator may have read the key already (handleGetRaw's
		// barrier), and must be the only one to decide from here.
		if c, ok := cur.Owners(h).Coordinator(); !ok || c.Addr != s.cfg.Self {
			mu.Unlock()
			rep.fail(&rpc.Error{Msg: wire.MsgObsolete})
			return
		}
	}
	bp := getBuf()
	old, buf, gerr := s.db.Get(op.dbkey, *bp)
	*bp = buf
	if gerr != nil && !errors.Is(gerr, store.ErrNotFound) {
		mu.Unlock()
		putBuf(bp)
		rep.fail(s.storeError(gerr))
		return
	}
	exists := gerr == nil && s.visible(&old, now)
	var oldp *store.Record
	if gerr == nil {
		oldp = &old
	}
	if op.reqID != 0 {
		if e, ok := s.dedup.get(op.reqID); ok {
			s.answerDuplicate(rep, op, h, w, r, sb, e, oldp, mu, bp)
			return
		}
	}
	rec, status, num, err := s.decide(op, oldp, exists)
	op.created = !exists
	if exists {
		op.oldExp = old.Exptime
	}
	if err != nil || status != wire.StatusOK {
		var ct uint64
		var extra func([]byte) []byte
		if status == wire.StatusExists && op.method == wire.SrvLease && op.lease == wire.LeaseWin && exists {
			// The version the lease lost to (see wire.SrvLease).
			ct, extra = old.CAS(), appendFalse
			if old.TokenSent {
				extra = appendTrue
			}
		}
		mu.Unlock()
		putBuf(bp)
		if err != nil {
			rep.fail(err)
			return
		}
		rep.status(nil, op, status, ct, extra)
		return
	}
	if oldp != nil {
		// The new version must be newer than the one it replaces, even
		// if that one came from a peer whose clock we have not seen (or
		// refused: a stored version is merged however far ahead).
		s.clk.Advance(oldp.Clock)
	}
	rec.Clock = s.clk.Now()
	de := dedupEntry{h: h, clock: rec.Clock, num: num, created: op.created, oldExp: op.oldExp}
	if op.reqID != 0 {
		s.dedup.begin(stripe, op.reqID, &de, op.dbkey)
	}
	if _, err := s.db.Update(&rec, newer(rec.Clock)); err != nil {
		if op.reqID != 0 {
			s.dedup.abort(stripe)
		}
		mu.Unlock()
		putBuf(bp)
		rep.fail(s.storeError(err))
		return
	}
	if op.reqID != 0 {
		// Remembered before the lock is released: a retry of this write
		// may arrive while it is still being replicated.
		s.dedup.commit(stripe, op.reqID, de)
	}
	tail := s.replicationTail(op.reqID, &de)
	s.maybeGrow()
	payload, valOff := encodeRecord(&rec)
	mu.Unlock()
	putBuf(bp)
	start := time.Now()
	s.replicateStamped(h, w, r, payload, valOff, rec.Clock, 0, sb, tail, func(ct uint64, payload []byte, err error, rb *rpc.Batch) {
		s.m.writeLat.Observe(since(start))
		if op.reqID != 0 && ct != de.clock {
			de.clock = ct // re-stamped
			s.dedup.put(op.reqID, de)
		}
		if err != nil {
			s.m.writeErr.Inc()
			rep.fail(err)
			return
		}
		s.m.write.Inc()
		var extra func([]byte) []byte
		switch {
		case op.method == wire.SrvArith:
			extra = func(b []byte) []byte { return msgpack.AppendUint(b, num) }
		case op.method == wire.SrvTouch && op.want:
			extra = func(b []byte) []byte { return append(b, payload[valOff:]...) }
		}
		if rec.Cas != 0 {
			ct = rec.Cas // the record's CAS unique (a lease win keeps it), not its clock
		}
		rep.status(rb, op, wire.StatusOK, ct, extra)
	})
}

// replicationTail returns the dedup parameters of the replication of the
// version de names (h and clock), made by write id (0: none): [dedup | nil,
// dedupAt...] with the key's recent earlier writes (see recentIDs), or nil
// when there is nothing to send.
func (s *Server) replicationTail(id uint64, de *dedupEntry) []byte {
	var tail []byte
	if id != 0 {
		tail = appendDedup(nil, id, de)
	}
	if older := s.dedup.recentIDs(de.h, de.clock, nil); len(older) > 0 {
		if tail == nil {
			tail = msgpack.AppendNil(nil)
		}
		for i := range older {
			tail = appendDedupAt(tail, &older[i])
		}
	}
	return tail
}

// answerDuplicate answers a write that was already applied (its request
// id is in the dedup table, e) with its first outcome. If the version it
// produced is still the current one (old), it is first replicated again,
// since the first attempt may have failed before every replica stored it;
// a newer version was replicated by the write that made it. It releases
// mu and bp.
func (s *Server) answerDuplicate(rep writeReply, op *writeOp, h uint64, w, r *ring.HashSpace, sb *rpc.Batch,
	e dedupEntry, old *store.Record, mu *sync.Mutex, bp *[]byte) {
	op.created, op.oldExp = e.created, e.oldExp
	var payload []byte
	var valOff int
	var cas uint64 // the version's own CAS unique, if it has one
	if old != nil && old.Clock == e.clock {
		payload, valOff = encodeRecord(old) // a copy: bp goes back below
		cas = old.Cas
	}
	mu.Unlock()
	putBuf(bp)
	s.log.Debugf("write %x answered from its first outcome (clock %x)", op.reqID, e.clock)
	var extra func([]byte) []byte
	if op.method == wire.SrvArith {
		extra = func(b []byte) []byte { return msgpack.AppendUint(b, e.num) }
	}
	if payload == nil {
		rep.status(nil, op, wire.StatusOK, e.clock, extra)
		return
	}
	s.replicateStamped(h, w, r, payload, valOff, e.clock, 0, sb, appendDedup(nil, op.reqID, &e),
		func(ct uint64, _ []byte, err error, rb *rpc.Batch) {
			if ct != e.clock {
				e.clock = ct
				s.dedup.put(op.reqID, e)
			}
			if err != nil {
				rep.fail(err)
				return
			}
			if cas != 0 {
				ct = cas // the version's CAS unique, as the first answer gave it
			}
			rep.status(rb, op, wire.StatusOK, ct, extra)
		})
}

// replicateStamped replicates payload (the record stamped ct, its DBValue
// at valOff) and calls done with the final stamp and payload. When a
// replica keeps a newer version of the key (newerError), it re-stamps the
// write above it and replicates again, a few rounds at most.
// sb and done's rb are as for Server.replicate.
func (s *Server) replicateStamped(h uint64, w, r *ring.HashSpace, payload []byte, valOff int, ct uint64, round int,
	sb *rpc.Batch, tail []byte, done func(ct uint64, payload []byte, err error, rb *rpc.Batch)) {
	s.replicate(h, w, r, payload, tail, sb, func(err error, rb *rpc.Batch) {
		var ne *newerError
		if !errors.As(err, &ne) {
			done(ct, payload, err, rb)
			return
		}
		if round >= 3 {
			done(ct, payload, errReplication, rb)
			return
		}
		nct, p2, err := s.restamp(h, payload, valOff, ct)
		switch {
		case err != nil:
			done(ct, payload, err, rb)
		case p2 == nil: // a newer write replaced ours here; it carries on
			done(ct, payload, nil, rb)
		default:
			s.replicateStamped(h, s.whs.Load(), s.rhs.Load(), p2, valOff, nct, round+1, nil, tail, done)
		}
	})
}

// restamp gives the write stamped ct (in payload) a new, newer clock in the
// local store and returns it with the re-stamped payload, or a nil payload
// if a newer write has replaced it meanwhile.
func (s *Server) restamp(h uint64, payload []byte, valOff int, ct uint64) (uint64, []byte, error) {
	dbkey, _, err := msgpack.ReadRaw(payload)
	if err != nil {
		return 0, nil, errParams
	}
	raw, rest, err := msgpack.ReadRaw(payload[valOff:])
	if err != nil || len(raw) < 8 {
		return 0, nil, errParams
	}
	clockAt := len(payload) - len(rest) - len(raw)
	mu := &s.stripes[h%uint64(len(s.stripes))]
	mu.Lock()
	defer mu.Unlock()
	bp := getBuf()
	cur, buf, gerr := s.db.Get(dbkey, *bp)
	*bp = buf
	superseded := gerr == nil && cur.Clock != ct
	putBuf(bp)
	if superseded {
		return ct, nil, nil
	}
	nct := s.clk.Now()
	p2 := bytes.Clone(payload)
	binary.BigEndian.PutUint64(p2[clockAt:], nct)
	v, err := wire.ParseDBValue(p2[clockAt : clockAt+len(raw)])
	if err != nil {
		return 0, nil, errParams
	}
	rec := valueRecord(dbkey, &v)
	s.notePurgeSeen(dbkey)
	if _, err := s.db.Update(&rec, newer(nct)); err != nil {
		return 0, nil, s.storeError(err)
	}
	return nct, p2, nil
}

// replyStatus sends the result of a write in the form its method expects.
func replyStatus(req *rpc.Request, rb *rpc.Batch, op *writeOp, status int, ct uint64, extra func([]byte) []byte) {
	switch op.method {
	case wire.SrvSet: // kumofs: clocktime, or false when the compare failed
		if status == wire.StatusOK {
			req.ReplyIn(rb, func(b []byte) []byte { return msgpack.AppendUint(b, ct) })
		} else {
			req.ReplyIn(rb, func(b []byte) []byte { return msgpack.AppendBool(b, false) })
		}
	case wire.SrvDelete: // kumofs: true deleted / false not found
		ok := status == wire.StatusOK
		req.ReplyIn(rb, func(b []byte) []byte { return msgpack.AppendBool(b, ok) })
	case wire.SrvArith: // [status, value, clocktime, created, old_exptime]
		req.ReplyIn(rb, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 5)
			b = msgpack.AppendUint(b, uint64(status))
			if extra != nil {
				b = extra(b)
			} else {
				b = msgpack.AppendUint(b, 0)
			}
			b = msgpack.AppendUint(b, ct)
			b = msgpack.AppendBool(b, status == wire.StatusOK && op.created)
			return msgpack.AppendUint(b, uint64(op.oldExp))
		})
	case wire.SrvTouch: // [status, DBValue | nil]
		req.ReplyIn(rb, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = msgpack.AppendUint(b, uint64(status))
			if extra != nil {
				return extra(b)
			}
			return msgpack.AppendNil(b)
		})
	case wire.SrvLease: // [status, clocktime, token_out]
		req.ReplyIn(rb, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 3)
			b = msgpack.AppendUint(b, uint64(status))
			b = msgpack.AppendUint(b, ct)
			if extra != nil {
				return extra(b)
			}
			return msgpack.AppendBool(b, false)
		})
	default: // Store, Remove: [status, clocktime]
		req.ReplyIn(rb, func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = msgpack.AppendUint(b, uint64(status))
			return msgpack.AppendUint(b, ct)
		})
	}
}

// encodeRecord returns msgpack raw(DBKey) ‖ raw(DBValue) for replication,
// and the offset at which raw(DBValue) starts.
func encodeRecord(rec *store.Record) ([]byte, int) {
	v := recordValue(rec)
	n := wire.DBValueLen(&v)
	b := make([]byte, 0, len(rec.Key)+n+10)
	b = msgpack.AppendRaw(b, rec.Key)
	off := len(b)
	b = msgpack.AppendRawHeader(b, uint32(n))
	return wire.AppendDBValue(b, &v), off
}
