package store

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"sync/atomic"
)

// Get returns key's record. The record's Key and Value alias the returned
// buffer, which is buf (grown if too small): they stay valid until the
// caller reuses or modifies that buffer, and are never touched by the
// store afterwards. It returns ErrNotFound if the key is absent. Tombstones
// (Tombstone=true) and expired records are returned; the caller judges
// them. Get takes no locks.
func (db *DB) Get(key []byte, buf []byte) (Record, []byte, error) {
	g, err := db.acquire()
	if err != nil {
		return Record{}, buf, err
	}
	rec, buf, err := g.get(key, buf)
	g.release()
	return rec, buf, err
}

func (g *gen) get(key []byte, buf []byte) (Record, []byte, error) {
	h := hashKey(key)
	tag := h & 0xffff
	b := bucketOf(h, g.nbuckets)
	for n := uint64(0); n < g.nbuckets; n++ {
		ss := g.slots[b*slotsPerBkt : b*slotsPerBkt+slotsPerBkt]
		for i := range ss {
			s := atomic.LoadUint64(&ss[i])
			if s == 0 {
				return Record{}, buf, ErrNotFound
			}
			if slotTag(s) != tag || slotHint(s) == 0 {
				continue
			}
			off := slotOff(s, g.apow)
			rec, nb, ok, err := g.readInto(off, slotHint(s), key, buf)
			if err != nil || ok {
				return rec, nb, err
			}
		}
		if b++; b == g.nbuckets {
			b = 0
		}
	}
	return Record{}, buf, ErrNotFound
}

// readInto reads the record at off into buf if its key is key.
func (g *gen) readInto(off int64, hint int, key, buf []byte) (Record, []byte, bool, error) {
	var rec Record
	limit := g.logEnd.Load()
	if off+recHdrSize <= int64(len(g.m)) && off+recHdrSize <= limit {
		p := g.m[off:]
		klen, vlen, rf, err := recHead(p)
		if err != nil {
			return rec, buf, false, ErrCorrupt
		}
		n := recHdrSize + klen + vlen
		if off+int64(n) > limit || off+int64(n) > int64(len(g.m)) {
			return rec, buf, false, ErrCorrupt
		}
		if klen != len(key) || !bytes.Equal(p[recHdrSize:recHdrSize+klen], key) {
			return rec, buf, false, nil
		}
		if binary.LittleEndian.Uint32(p) != crc32.Checksum(p[4:n], castagnoli) {
			return rec, buf, false, ErrCorrupt
		}
		if cap(buf) < klen+vlen {
			buf = make([]byte, klen+vlen)
		}
		buf = buf[:klen+vlen]
		copy(buf, p[recHdrSize:n])
		fillRecord(p[:n], klen, vlen, rf, &rec)
		rec.Key, rec.Value = buf[:klen:klen], buf[klen+vlen-len(rec.Value):]
		return rec, buf, true, nil
	}
	// Outside the mapping: pread into buf.
	want := max(hint*hintUnit, recHdrSize)
	if off+int64(want) > limit {
		want = int(limit - off)
	}
	if cap(buf) < want {
		buf = make([]byte, want)
	}
	p, klen, vlen, rf, err := g.record(off, limit, &buf)
	if err != nil {
		return rec, buf, false, ErrCorrupt
	}
	if klen != len(key) || !bytes.Equal(p[recHdrSize:recHdrSize+klen], key) {
		return rec, buf, false, nil
	}
	n := recHdrSize + klen + vlen
	if binary.LittleEndian.Uint32(p) != crc32.Checksum(p[4:n], castagnoli) {
		return rec, buf, false, ErrCorrupt
	}
	fillRecord(p, klen, vlen, rf, &rec)
	copy(p, p[recHdrSize:n]) // move key and value to the front
	buf = p[:klen+vlen]
	rec.Key, rec.Value = buf[:klen:klen], buf[klen+vlen-len(rec.Value):]
	return rec, buf, true, nil
}

// slotRef is the result of a writer's probe for a key.
type slotRef struct {
	own    int64  // index of the key's slot (live or removed), or -1
	free   int64  // first slot a new key may take, or -1 if none
	slot   uint64 // value of own
	old    Record // the live record at own; aliases the mapping or scratch
	oldLen int64  // aligned size of old
}

// find probes for key as a writer. A removed slot may be taken by another
// key only if its removal marker is before the checkpoint (rule R3 in
// FORMAT.md); reuse is further limited to offsets below reuseBefore.
func (g *gen) find(key []byte, h uint64, scratch *[]byte) (slotRef, error) {
	r := slotRef{own: -1, free: -1}
	tag := h & 0xffff
	b := bucketOf(h, g.nbuckets)
	c := g.ckpt.Load()
	limit := g.logEnd.Load()
	for n := uint64(0); n < g.nbuckets; n++ {
		for i := b * slotsPerBkt; i < b*slotsPerBkt+slotsPerBkt; i++ {
			s := atomic.LoadUint64(&g.slots[i])
			if s == 0 {
				if r.free < 0 {
					r.free = int64(i)
				}
				return r, nil
			}
			off := slotOff(s, g.apow)
			removed := slotHint(s) == 0
			if slotTag(s) == tag {
				p, klen, vlen, rf, err := g.record(off, limit, scratch)
				if err != nil {
					return r, ErrCorrupt
				}
				if klen == len(key) && bytes.Equal(p[recHdrSize:recHdrSize+klen], key) {
					r.own, r.slot = int64(i), s
					if !removed {
						n := recHdrSize + klen + vlen
						if binary.LittleEndian.Uint32(p) != crc32.Checksum(p[4:n], castagnoli) {
							return r, ErrCorrupt
						}
						fillRecord(p, klen, vlen, rf, &r.old)
						r.oldLen = recSize(klen, vlen, g.apow)
					}
					return r, nil
				}
			}
			if removed && off < c && r.free < 0 {
				r.free = int64(i)
			}
		}
		if b++; b == g.nbuckets {
			b = 0
		}
	}
	return r, nil
}

// testHookPublish, if set, runs in store between appending a record
// (the log end already covers it) and publishing its slot.
var testHookPublish func(key []byte)

// store appends rec (record flags rf) and publishes it in the slot r
// found for it. Counters are kept in step. The caller serializes writes.
func (g *gen) store(r *slotRef, rec *Record, rf byte, h uint64, wbuf *[]byte) error {
	idx := r.own
	if idx < 0 {
		if rf == recRemove {
			return nil // nothing to remove
		}
		idx = r.free
		if idx < 0 {
			return ErrFull
		}
	}
	*wbuf = appendRecord((*wbuf)[:0], rec, rf, g.apow)
	size := int64(len(*wbuf))
	off, err := g.appendLog(*wbuf)
	if err != nil {
		return err
	}
	var s uint64
	if rf == recRemove {
		s = removedSlot(off, g.apow, h)
	} else {
		s = makeSlot(off, g.apow, size, h)
	}
	if testHookPublish != nil {
		testHookPublish(rec.Key)
	}
	prev := atomic.LoadUint64(&g.slots[idx])
	atomic.StoreUint64(&g.slots[idx], s)
	g.pubEnd.Store(off + size)
	wasLive := prev != 0 && slotHint(prev) != 0 && r.own >= 0
	wasRemoved := prev != 0 && slotHint(prev) == 0
	if wasLive {
		g.rnum.Add(-1)
		g.live.Add(-r.oldLen)
		if r.old.Tombstone {
			g.tombs.Add(-1)
			g.tombB.Add(-r.oldLen)
		}
	}
	if wasRemoved {
		g.del.Add(-1)
	}
	if rf == recRemove {
		g.del.Add(1)
	} else {
		g.rnum.Add(1)
		g.live.Add(size)
		if rf&recTombstone != 0 {
			g.tombs.Add(1)
			g.tombB.Add(size)
		}
	}
	return nil
}

func checkRecord(rec *Record) error {
	if len(rec.Key) == 0 || len(rec.Key) > maxKeyLen || len(rec.Value) > maxValueLen {
		return ErrInvalid
	}
	return nil
}

// Put stores rec, replacing any version of its key. rec.Value is ignored
// for a tombstone.
func (db *DB) Put(rec *Record) error {
	_, err := db.Update(rec, nil)
	return err
}

// Update atomically stores rec if pred returns true for the key's current
// record, which is nil when the key is absent (pred nil means always).
// old and its slices are valid only during pred, which must not call back
// into the DB. It reports whether rec was stored.
func (db *DB) Update(rec *Record, pred func(old *Record) bool) (bool, error) {
	if err := checkRecord(rec); err != nil {
		return false, err
	}
	var rf byte
	if rec.Tombstone {
		rf = recTombstone
	}
	return db.write(rec.Key, rec, rf, pred)
}

// Delete physically removes key if it is present and pred (nil means
// always) returns true for its current record. It writes a removal marker,
// not a tombstone: use it to purge tombstones and to drop keys this server
// no longer owns. old is valid only during pred. It reports whether the
// key was removed.
func (db *DB) Delete(key []byte, pred func(old *Record) bool) (bool, error) {
	if len(key) == 0 || len(key) > maxKeyLen {
		return false, ErrInvalid
	}
	return db.write(key, &Record{Key: key}, recRemove, pred)
}

func (db *DB) write(key []byte, rec *Record, rf byte, pred func(old *Record) bool) (bool, error) {
	ok, err := db.write1(key, rec, rf, pred)
	if err == ErrFull && db.cur.Load().del.Load() > 0 {
		// Removed slots become reusable once a checkpoint covers their
		// removal (rule R3): with no sync for a while, delete churn can
		// hold every free slot. Checkpoint, then try once more.
		if cerr := db.Sync(); cerr != nil {
			return false, cerr
		}
		ok, err = db.write1(key, rec, rf, pred)
	}
	return ok, err
}

func (db *DB) write1(key []byte, rec *Record, rf byte, pred func(old *Record) bool) (bool, error) {
	h := hashKey(key)
	db.writeMu.Lock()
	if db.closed {
		db.writeMu.Unlock()
		return false, ErrClosed
	}
	g := db.cur.Load()
	r, err := g.find(key, h, &db.rbuf)
	if err != nil {
		db.writeMu.Unlock()
		return false, err
	}
	present := r.own >= 0 && slotHint(r.slot) != 0
	if rf == recRemove && !present {
		db.writeMu.Unlock()
		return false, nil
	}
	if pred != nil {
		var old *Record
		if present {
			db.old = r.old // a DB field, so r does not escape to the heap
			old = &db.old
		}
		if !pred(old) {
			db.writeMu.Unlock()
			return false, nil
		}
	}
	if err := g.store(&r, rec, rf, h, &db.wbuf); err != nil {
		db.writeMu.Unlock()
		return false, err
	}
	db.written++
	seq := db.written
	db.writeMu.Unlock()
	if db.opt.Sync == SyncAlways {
		if err := db.waitDurable(seq); err != nil {
			return true, err
		}
	}
	return true, nil
}

// ForEach calls fn for every live record (tombstones included) in log
// order. It takes no lock and may run while writers do: records written
// after it started may or may not be seen, and a key rewritten during the
// scan may be missed if its new version is appended after the scan ends.
// rec and its slices are valid only during fn, which must not call
// Close (Close waits for running scans). An error from fn stops the scan
// and is returned.
func (db *DB) ForEach(fn func(rec *Record) error) error {
	g, err := db.acquire()
	if err != nil {
		return err
	}
	defer g.release()
	var scratch []byte
	var rec Record
	off := g.logStart
	for {
		end := g.pubEnd.Load() // every record below it has its slot
		if off >= end {
			return nil
		}
		for off < end {
			p, klen, vlen, rf, err := g.record(off, end, &scratch)
			if err == nil {
				_, _, err = decodeRecord(p, &rec)
			}
			if err != nil {
				return err
			}
			if rf != recRemove && g.isLive(rec.Key, off) {
				if err := fn(&rec); err != nil {
					return err
				}
			}
			off += recSize(klen, vlen, g.apow)
		}
	}
}

// isLive reports whether key's live slot points at off.
func (g *gen) isLive(key []byte, off int64) bool {
	h := hashKey(key)
	want := uint64(off)>>g.apow | (h&0xffff)<<48
	b := bucketOf(h, g.nbuckets)
	for n := uint64(0); n < g.nbuckets; n++ {
		for i := b * slotsPerBkt; i < b*slotsPerBkt+slotsPerBkt; i++ {
			s := atomic.LoadUint64(&g.slots[i])
			if s == 0 {
				return false
			}
			if s&^(0xff<<offBits) == want && slotHint(s) != 0 {
				return true
			}
		}
		if b++; b == g.nbuckets {
			b = 0
		}
	}
	return false
}

// Len returns the number of live keys, tombstones included.
func (db *DB) Len() int {
	g, err := db.acquire()
	if err != nil {
		return 0
	}
	defer g.release()
	return int(g.rnum.Load())
}
