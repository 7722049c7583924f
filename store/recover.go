package store

import (
	"fmt"
	"sync/atomic"
)

// recover brings the slot table in line with the log after an unclean
// shutdown (FORMAT.md, "Recovery"): scan the tail from the checkpoint C
// to the first invalid record E; if every slot pointing at or past C
// points at a valid record in [C, E), replay [C, E); otherwise rebuild
// the whole table from the log, refusing damage before C. The file is
// cut at E and a new checkpoint written.
func (g *gen) recover(size int64) error {
	c := g.ckpt.Load()
	if size < c {
		return fmt.Errorf("%w (file shorter than its checkpoint)", ErrCorrupt)
	}
	var scratch []byte
	e := g.scanValid(c, size, &scratch)
	full := g.hdr.flags&flagRebuild != 0
	for i := range g.slots {
		if full {
			break
		}
		s := g.slots[i]
		if s == 0 {
			continue
		}
		off := slotOff(s, g.apow)
		if off < c {
			continue
		}
		p, _, _, _, err := g.record(off, e, &scratch)
		if err == nil {
			var rec Record
			_, _, err = decodeRecord(p, &rec)
			if err == nil && slotTag(s) != hashKey(rec.Key)&0xffff {
				err = ErrCorrupt
			}
		}
		if err != nil {
			full = true
			break
		}
	}
	from := c
	if full {
		// Check the whole log before touching the table, so a refused
		// open leaves the file as it was.
		if bad := g.scanValid(g.logStart, c, &scratch); bad < c {
			return fmt.Errorf("%w (record at offset %d, before the checkpoint at %d)", ErrCorrupt, bad, c)
		}
		// A crash during the rebuild must not leave a half-built table
		// that looks trusted: mark the rebuild first.
		h := g.hdr
		h.flags |= flagRebuild
		if err := g.writeHeader(h); err != nil {
			return err
		}
		clear(g.slots)
		from = g.logStart
		// No removed slot is reused during a rebuild.
		g.ckpt.Store(g.logStart)
	}
	g.logEnd.Store(e)
	var rec Record
	for off := from; off < e; {
		p, klen, vlen, rf, err := g.record(off, e, &scratch)
		if err == nil {
			_, _, err = decodeRecord(p, &rec)
		}
		if err != nil {
			return fmt.Errorf("%w (record at offset %d)", ErrCorrupt, off)
		}
		size := recSize(klen, vlen, g.apow)
		if err := g.replay(&rec, rf, off, size, &scratch); err != nil {
			return err
		}
		off += size
	}
	if err := g.f.Truncate(e); err != nil {
		return err
	}
	g.allocEnd = e
	if err := g.recount(&scratch); err != nil {
		return err
	}
	h := g.hdr
	return g.checkpointPrivate(h.flags &^ (flagOpen | flagRebuild))
}

// scanValid returns the end of the run of valid records starting at from.
func (g *gen) scanValid(from, size int64, scratch *[]byte) int64 {
	var rec Record
	off := from
	for off < size {
		p, klen, vlen, _, err := g.record(off, size, scratch)
		if err == nil {
			_, _, err = decodeRecord(p, &rec)
		}
		if err != nil {
			break
		}
		off += recSize(klen, vlen, g.apow)
	}
	return off
}

// replay applies the record at off (size bytes on disk) idempotently: a
// slot already pointing at off or later is left alone.
func (g *gen) replay(rec *Record, rf byte, off, size int64, scratch *[]byte) error {
	h := hashKey(rec.Key)
	r, err := g.find(rec.Key, h, scratch)
	if err != nil {
		return err
	}
	if r.own >= 0 {
		if slotOff(r.slot, g.apow) >= off {
			return nil
		}
		if rf == recRemove {
			atomic.StoreUint64(&g.slots[r.own], removedSlot(off, g.apow, h))
		} else {
			atomic.StoreUint64(&g.slots[r.own], makeSlot(off, g.apow, size, h))
		}
		return nil
	}
	if rf == recRemove {
		return nil
	}
	if r.free < 0 {
		return ErrFull
	}
	atomic.StoreUint64(&g.slots[r.free], makeSlot(off, g.apow, size, h))
	return nil
}

// recount recomputes the counters from the slot table.
func (g *gen) recount(scratch *[]byte) error {
	var rnum, live, del, tombs, tombB int64
	end := g.logEnd.Load()
	for _, s := range g.slots {
		switch {
		case s == 0:
		case slotHint(s) == 0:
			del++
		default:
			_, klen, vlen, rf, err := g.record(slotOff(s, g.apow), end, scratch)
			if err != nil {
				return fmt.Errorf("%w (slot points at a bad record)", ErrCorrupt)
			}
			rnum++
			size := recSize(klen, vlen, g.apow)
			if rf&recTombstone != 0 {
				tombs++
				tombB += size
			}
			live += size
		}
	}
	g.rnum.Store(rnum)
	g.live.Store(live)
	g.del.Store(del)
	g.tombs.Store(tombs)
	g.tombB.Store(tombB)
	return nil
}
