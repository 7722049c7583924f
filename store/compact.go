package store

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

const compactSuffix = ".compact"

// CompactOptions control Compact.
type CompactOptions struct {
	// Now is the time expiry and tombstone age are judged against; zero
	// means time.Now().
	Now time.Time
	// TombstoneAge: tombstones whose clock (Clock>>32 seconds) is older
	// than Now-TombstoneAge are dropped. Zero or negative keeps them all.
	TombstoneAge time.Duration
}

// Compact reclaims the space of overwritten, removed and expired records
// while the store stays open. Records whose Exptime has passed become
// tombstones with the same clock (a vanished key could be resurrected by
// a stale replica); tombstones older than TombstoneAge are dropped.
//
// It copies the live records into "<path>.compact" without blocking
// readers or writers, catches up with records written meanwhile, then
// takes the write lock for a last short catch-up and renames the new
// file over the old one. Readers still using the old file finish on it.
// Memory use is bounded by the two slot tables. A crash at any point
// leaves a valid store (the stale .compact file is removed at Open).
func (db *DB) Compact(opt CompactOptions) error {
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	nowSec := now.Unix()
	age := int64(opt.TombstoneAge / time.Second)
	xf := func(rec *Record) bool {
		if !rec.Tombstone && rec.Exptime != 0 && int64(rec.Exptime) <= nowSec {
			*rec = Record{Key: rec.Key, Clock: rec.Clock, Tombstone: true}
		}
		if rec.Tombstone && opt.TombstoneAge > 0 && int64(rec.Clock>>32)+age < nowSec {
			return false
		}
		return true
	}
	return db.rewrite(db.path+compactSuffix, 0, xf, true)
}

// Optimize rebuilds the store online with a new bucket number (slot
// capacity), dropping dead records like Compact does but keeping
// tombstones and expired records as they are. buckets 0 means twice the
// record number (at least 1024).
func (db *DB) Optimize(buckets uint64) error {
	if buckets == 0 {
		buckets = max(2*uint64(db.Len()), 1024)
	}
	return db.rewrite(db.path+compactSuffix, buckets, nil, true)
}

// Backup writes a consistent copy of the live records to dst (via
// dst.tmp, fsync and rename) while the store stays open.
func (db *DB) Backup(dst string) error {
	return db.rewrite(dst+".tmp", 0, nil, false)
}

// BackupFunc is Backup with each record passed through xf first, which
// may change it (its Key and Value stay valid only during the call) or
// leave it out of the copy by returning false.
func (db *DB) BackupFunc(dst string, xf func(*Record) bool) error {
	return db.rewrite(dst+".tmp", 0, xf, false)
}

// rewrite copies the live records (filtered and changed by xf) into a new
// file at tmp with buckets slots (0 = same as now). With swap, the new
// file replaces the store; otherwise it is renamed to tmp minus ".tmp".
func (db *DB) rewrite(tmp string, buckets uint64, xf func(*Record) bool, swap bool) (err error) {
	db.compactMu.Lock()
	defer db.compactMu.Unlock()
	if db.closing.Load() {
		return ErrClosed
	}
	old, err := db.acquire()
	if err != nil {
		return err
	}
	defer old.release()
	if buckets == 0 {
		buckets = old.nbuckets * slotsPerBkt
	}
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	f.Close()
	ng, err := openGen(tmp, buckets, false)
	if err != nil {
		os.Remove(tmp)
		return err
	}
	committed := false
	defer func() {
		if !committed {
			ng.release()
			<-ng.done
			os.Remove(tmp)
		}
	}()
	var wbuf, scratch, nscratch []byte
	var rec Record

	// Phase 1: the live records below the current end, without locks,
	// found through the slot table, so the cost follows the live data, not
	// the log's length (a log mostly of overwritten versions is common).
	// The end is the published one: every record below it had its slot
	// stored before the scan began, so a slot pointing below it names the
	// newest version there, and one pointing at or past it is left to the
	// catch-ups below, which start at end. A record past pubEnd may still
	// wait for its slot; judged by the slots it would look dead.
	//
	// A slot's index never changes while the key lives (overwrites reuse
	// it, a removal zeroes its hint), and a key added to a slot already
	// passed is written past end: the catch-ups copy it.
	end := old.pubEnd.Load()
	for i := range old.slots {
		if db.closing.Load() {
			return ErrClosed
		}
		s := atomic.LoadUint64(&old.slots[i])
		if s == 0 || slotHint(s) == 0 {
			continue
		}
		off := slotOff(s, old.apow)
		if off >= end {
			continue
		}
		p, _, _, rf, err := old.record(off, end, &scratch)
		if err == nil {
			_, _, err = decodeRecord(p, &rec)
		}
		if err == nil && (rf == recRemove || hashKey(rec.Key)&0xffff != slotTag(s)) {
			err = ErrCorrupt
		}
		if err != nil {
			return fmt.Errorf("%w (record at offset %d, slot %d)", err, off, i)
		}
		if xf != nil {
			if !xf(&rec) {
				continue
			}
			if rec.Tombstone {
				rf = recTombstone
			}
		}
		if err := ng.apply(&rec, rf, &wbuf, &nscratch); err != nil {
			return err
		}
	}
	off := end
	// Phase 2: catch up with what was written meanwhile, still unlocked,
	// while the backlog shrinks; then make the bulk durable.
	for i := 0; i < 4 && old.logEnd.Load()-off > 1<<20; i++ {
		if off, err = ng.catchUp(old, off, old.logEnd.Load(), &wbuf, &scratch, &nscratch); err != nil {
			return err
		}
	}
	if off, err = ng.catchUp(old, off, old.logEnd.Load(), &wbuf, &scratch, &nscratch); err != nil {
		return err
	}
	if err := ng.checkpointPrivate(0); err != nil {
		return err
	}
	if testHookSwap != nil {
		testHookSwap()
	}
	// Phase 3: the last records under the write lock, then the switch.
	db.ckptMu.Lock()
	defer db.ckptMu.Unlock()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	if off, err = ng.catchUp(old, off, old.logEnd.Load(), &wbuf, &scratch, &nscratch); err != nil {
		return err
	}
	_ = off
	if !swap {
		if err := ng.checkpointPrivate(0); err != nil {
			return err
		}
		committed = true
		ng.release()
		<-ng.done
		if err := os.Rename(tmp, tmp[:len(tmp)-len(".tmp")]); err != nil {
			return err
		}
		return syncDir(tmp)
	}
	if err := ng.checkpointPrivate(flagOpen); err != nil {
		return err
	}
	if err := os.Rename(tmp, db.path); err != nil {
		return err
	}
	// From here the path names the new file: switch to it whatever
	// happens next.
	committed = true
	db.cur.Store(ng)
	old.release() // the DB's reference; ours is dropped by the defer
	// Writes made into the old file may never have been fdatasynced
	// there: they are durable only once the directory entry names the
	// new file, so the directory is synced before they are acknowledged.
	if err := syncDir(db.path); err != nil {
		return err
	}
	db.ckptSeq.Store(db.written)
	db.markDurable(db.written)
	return nil
}

// testHookSwap, if set, runs in rewrite after the unlocked copy and
// catch-up, before it takes the locks for the last catch-up and the swap.
var testHookSwap func()

// catchUp applies every record of old in [off, end) to g and returns end.
func (g *gen) catchUp(old *gen, off, end int64, wbuf, scratch, nscratch *[]byte) (int64, error) {
	var rec Record
	for off < end {
		p, klen, vlen, rf, err := old.record(off, end, scratch)
		if err == nil {
			_, _, err = decodeRecord(p, &rec)
		}
		if err != nil {
			return off, fmt.Errorf("%w (record at offset %d)", err, off)
		}
		if err := g.apply(&rec, rf, wbuf, nscratch); err != nil {
			return off, err
		}
		off += recSize(klen, vlen, old.apow)
	}
	return off, nil
}

// apply writes rec to a private generation g as the writer path would.
func (g *gen) apply(rec *Record, rf byte, wbuf, scratch *[]byte) error {
	h := hashKey(rec.Key)
	r, err := g.find(rec.Key, h, scratch)
	if err != nil {
		return err
	}
	if rf == recRemove && (r.own < 0 || slotHint(r.slot) == 0) {
		return nil
	}
	return g.store(&r, rec, rf, h, wbuf)
}
