package store

import (
	"cmp"
	"fmt"
	"os"
	"slices"
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
// Memory use is bounded by the two slot tables and at most 32 MiB of
// offsets (see copier.bySlots). A crash at any point
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
	// Phase 1: the live records below the current end, without locks.
	// The end is the published one: a record past it may still wait for
	// its slot, and judged by the slots it would look dead while the
	// catch-ups below start after it (its Put acknowledged, yet missing
	// from the new file).
	end := old.pubEnd.Load()
	c := copier{db: db, old: old, ng: ng, end: end, xf: xf}
	if done, err := c.bySlots(); err != nil {
		return err
	} else if !done {
		if err := c.byWalk(); err != nil {
			return err
		}
	}
	wbuf, scratch, nscratch := c.wbuf, c.scratch, c.nscratch
	off := end
	// Phase 2: catch up with what was written meanwhile, still unlocked,
	// while the backlog shrinks, and make it durable; again while the
	// writes made during that sync are more than a small last step.
	// Phase 3 copies and syncs its backlog with writers held: under a
	// stream of large values one sync of the bulk let 75 MB pile up, and
	// writes then waited 3.6 s (every peer's calls timed out).
	for round := 0; ; round++ {
		for i := 0; i < 4 && old.logEnd.Load()-off > lastStep; i++ {
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
		if testHookSynced != nil {
			testHookSynced()
		}
		if old.logEnd.Load()-off <= lastStep || round == maxSyncRounds-1 {
			break
		}
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
	if testHookLastStep != nil {
		testHookLastStep(old.logEnd.Load() - off)
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

// lastStep is the backlog rewrite leaves for its last catch-up, made with
// writers held; maxSyncRounds bounds its unlocked catch-up and sync rounds
// (writes faster than the copy and its sync would never leave less).
const (
	lastStep      = 1 << 20
	maxSyncRounds = 8
)

// testHookSynced, if set, runs in rewrite after each unlocked sync of
// the new file; testHookLastStep gets the backlog of the last catch-up,
// with writers held.
var testHookSynced func()
var testHookLastStep func(backlog int64)

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

// maxSortedLive is the most live records Compact copies through the slot
// table (copier.bySlots); it holds one uint64 per record in memory.
var maxSortedLive = 1 << 22

// copier copies the live records of old below end into ng, passing each
// through xf (see rewrite).
type copier struct {
	db                      *DB
	old, ng                 *gen
	end                     int64
	xf                      func(*Record) bool
	wbuf, scratch, nscratch []byte
	rec                     Record
}

// bySlots copies the records that live slots point at below end, in log
// order, and reports false (having copied nothing) when there are more
// than maxSortedLive. Its cost follows the live data, not the log's
// length: a log of mostly overwritten versions, which a server taking
// sets to a small key space compacts every few seconds, is not read
// through. Sorting keeps the reads in log order for a store larger than
// memory.
//
// Every record below end had its slot stored before the scan began, so a
// slot pointing below end names the newest version there, and one
// pointing at or past it is left to the catch-ups, which start at end. A
// slot's index never changes while its key lives (an overwrite reuses it,
// a removal zeroes its hint), and a key added meanwhile, even to a slot
// already passed, is written past end. A version read here and replaced
// or removed later is corrected by the catch-ups.
func (c *copier) bySlots() (bool, error) {
	old := c.old
	var live []uint64
	for i := range old.slots {
		if i&0xffff == 0 && c.db.closing.Load() {
			return false, ErrClosed
		}
		s := atomic.LoadUint64(&old.slots[i])
		if s == 0 || slotHint(s) == 0 || slotOff(s, old.apow) >= c.end {
			continue
		}
		if len(live) == maxSortedLive {
			return false, nil
		}
		live = append(live, s)
	}
	slices.SortFunc(live, func(a, b uint64) int { return cmp.Compare(a&offMask, b&offMask) })
	for _, s := range live {
		if c.db.closing.Load() {
			return false, ErrClosed
		}
		off := slotOff(s, old.apow)
		p, _, _, rf, err := old.record(off, c.end, &c.scratch)
		if err == nil {
			_, _, err = decodeRecord(p, &c.rec)
		}
		if err == nil && (rf == recRemove || hashKey(c.rec.Key)&0xffff != slotTag(s)) {
			err = ErrCorrupt
		}
		if err != nil {
			return false, fmt.Errorf("%w (record at offset %d)", err, off)
		}
		if err := c.copy(rf); err != nil {
			return false, err
		}
	}
	return true, nil
}

// byWalk copies the live records below end by walking the log from its
// start and asking the slots about each record.
func (c *copier) byWalk() error {
	old := c.old
	for off := old.logStart; off < c.end; {
		if c.db.closing.Load() {
			return ErrClosed
		}
		p, klen, vlen, rf, err := old.record(off, c.end, &c.scratch)
		if err == nil {
			_, _, err = decodeRecord(p, &c.rec)
		}
		if err != nil {
			return fmt.Errorf("%w (record at offset %d)", err, off)
		}
		at := off
		off += recSize(klen, vlen, old.apow)
		if rf == recRemove || !old.isLive(c.rec.Key, at) {
			continue
		}
		if err := c.copy(rf); err != nil {
			return err
		}
	}
	return nil
}

// copy passes c.rec (record flags rf) through xf into the new generation.
func (c *copier) copy(rf byte) error {
	if c.xf != nil {
		if !c.xf(&c.rec) {
			return nil
		}
		if c.rec.Tombstone {
			rf = recTombstone
		}
	}
	return c.ng.apply(&c.rec, rf, &c.wbuf, &c.nscratch)
}
