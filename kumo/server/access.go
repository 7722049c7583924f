package server

import (
	"errors"
	"sync"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/store"
)

// accessSlots is the size of a server's access table (24 bytes a slot).
const accessSlots = 1 << 16

// accessShards is how many locks guard the table.
const accessShards = 64

// accessTable remembers, per key version, that a value was read and when
// it was read last, for memcached's mg h and l flags. It is direct-mapped
// by key hash: a key whose slot another key took is forgotten (h then
// reports 0 and l counts from the write), so the answers are exact for
// keys read again soon and approximate under many keys. It lives in
// memory only and per server: the owner that serves a key's reads is the
// one that knows.
type accessTable struct {
	mu    [accessShards]sync.Mutex // mu[i] protects the slots s with s%accessShards == i
	slots []accessSlot
}

type accessSlot struct {
	hash  uint64 // the key's ring hash; 0 = empty
	clock uint64 // the version that was read
	last  int64  // unix seconds of its last read
}

func newAccessTable() *accessTable {
	return &accessTable{slots: make([]accessSlot, accessSlots)}
}

// lookup reports whether the version clock of the key with hash h was
// read before, and when last (0 if not).
func (t *accessTable) lookup(h, clock uint64) (fetched bool, last int64) {
	i := h % accessSlots
	mu := &t.mu[i%accessShards]
	mu.Lock()
	s := t.slots[i]
	mu.Unlock()
	if s.hash != h || s.clock != clock || h == 0 {
		return false, 0
	}
	return true, s.last
}

// note records a read of version clock of the key with hash h at now.
func (t *accessTable) note(h, clock uint64, now int64) {
	i := h % accessSlots
	mu := &t.mu[i%accessShards]
	mu.Lock()
	t.slots[i] = accessSlot{hash: h, clock: clock, last: now}
	mu.Unlock()
}

// noteRead records a read of rec, served at now.
func (s *Server) noteRead(dbkey []byte, rec *store.Record, now int64) {
	h, _, _ := wire.SplitDBKey(dbkey)
	s.access.note(h, rec.Clock, now)
}

// handleGetAccess answers SrvGetAccess [DBKey, bump] as SrvGet does, plus
// whether the value was read before and when it was last accessed (read,
// or else written), as of before this read; bump false leaves them as
// they are (mg u).
func (s *Server) handleGetAccess(req *rpc.Request) {
	dbkey, p, err := readDBKeyParam(req.Params)
	bump := true
	if err == nil {
		if bump, _, err = msgpack.ReadBool(p); err != nil {
			err = errParams
		}
	}
	if err == nil {
		err = s.readerCheck(dbkey)
	}
	if err != nil {
		req.ReplyError(err)
		return
	}
	start := time.Now()
	defer func() { s.m.getLat.Observe(since(start)) }()
	now := start.Unix()
	bp := getBuf()
	defer putBuf(bp)
	rec, buf, err := s.db.Get(dbkey, *bp)
	*bp = buf
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && !s.visible(&rec, now):
		s.m.miss.Inc()
		req.Reply(func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 3)
			b = msgpack.AppendNil(b)
			b = msgpack.AppendBool(b, false)
			return msgpack.AppendUint(b, 0)
		})
		return
	case err != nil:
		req.ReplyError(s.storeError(err))
		return
	}
	s.m.get.Inc()
	h, _, _ := wire.SplitDBKey(dbkey)
	fetched, last := s.access.lookup(h, rec.Clock)
	if !fetched {
		last = int64(rec.Clock >> 32) // written then (the clock's seconds)
	}
	if bump {
		s.access.note(h, rec.Clock, now)
	}
	req.Reply(func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = appendRecordValue(b, &rec)
		b = msgpack.AppendBool(b, fetched)
		return msgpack.AppendUint(b, uint64(max(last, 0)))
	})
}
