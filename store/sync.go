package store

import (
	"fmt"
	"time"
)

// SyncPolicy says when writes reach stable storage.
type SyncPolicy int

const (
	// SyncInterval (the default) checkpoints every Options.SyncInterval
	// when there were writes. A process crash loses nothing; an OS crash
	// loses at most the last interval.
	SyncInterval SyncPolicy = iota
	// SyncNone checkpoints only at Close, Sync and Compact. A process
	// crash loses nothing; an OS crash may lose everything since.
	SyncNone
	// SyncAlways acknowledges a write only after an fdatasync covering
	// it. Concurrent writers share one fdatasync (group commit).
	SyncAlways
)

// ParseSyncPolicy parses "none", "interval" or "always".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch s {
	case "interval", "":
		return SyncInterval, nil
	case "none":
		return SyncNone, nil
	case "always":
		return SyncAlways, nil
	}
	return 0, fmt.Errorf("store: unknown sync policy %q (want none, interval or always)", s)
}

func (p SyncPolicy) String() string {
	switch p {
	case SyncNone:
		return "none"
	case SyncAlways:
		return "always"
	}
	return "interval"
}

func nowNano() int64 { return time.Now().UnixNano() }

// testHookGroupSync, if set, runs before each group-commit fdatasync.
var testHookGroupSync func()

// Sync checkpoints the store: every acknowledged write is on stable
// storage and the index on disk reflects it.
func (db *DB) Sync() error {
	db.writeMu.Lock()
	closed := db.closed
	db.writeMu.Unlock()
	if closed {
		return ErrClosed
	}
	return db.checkpoint(false)
}

// checkpoint makes everything written so far durable and records the new
// checkpoint in the header. clean clears the OPEN flag (Close).
//
// Order: capture the log end L and counters under writeMu; flush the slot
// table; fdatasync; then write the header with checkpoint = L and
// fdatasync again. Slots changed after L may reach the disk too, which
// recovery tolerates (FORMAT.md, rule R2).
func (db *DB) checkpoint(clean bool) error {
	db.ckptMu.Lock()
	defer db.ckptMu.Unlock()
	db.writeMu.Lock()
	g := db.cur.Load()
	seq := db.written
	h := g.hdr
	g.fillCounters(&h, g.logEnd.Load())
	db.writeMu.Unlock()
	if err := g.flushSlots(); err != nil {
		return db.fatal(g, err)
	}
	if err := fdatasync(g.f); err != nil {
		return db.fatal(g, err)
	}
	h.flags = g.hdr.flags | flagOpen
	if clean {
		h.flags &^= flagOpen
	}
	if err := g.writeHeader(h); err != nil {
		return db.fatal(g, err)
	}
	db.ckptSeq.Store(seq)
	db.markDurable(seq)
	return nil
}

// fatal records an I/O error in the header (best effort) and returns err.
func (db *DB) fatal(g *gen, err error) error {
	h := g.hdr
	if h.flags&flagFatal == 0 {
		h.flags |= flagFatal
		g.writeHeader(h)
	}
	return fmt.Errorf("store: checkpoint: %w", err)
}

func (db *DB) markDurable(seq uint64) {
	db.syncMu.Lock()
	if seq > db.durable {
		db.durable = seq
	}
	db.syncCond.Broadcast()
	db.syncMu.Unlock()
}

// syncLoop checkpoints every SyncInterval while there are new writes. It
// is owned by the DB and stopped by Close.
func (db *DB) syncLoop() {
	defer close(db.syncDone)
	t := time.NewTicker(db.opt.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			db.writeMu.Lock()
			dirty := db.written != db.ckptSeq.Load()
			db.writeMu.Unlock()
			if dirty {
				db.checkpoint(false) // an error is recorded as FATAL; writes go on
			}
		}
	}
}

// waitDurable blocks until write number seq is on stable storage. The
// first waiter becomes the leader and runs one fdatasync that covers
// every write made before it started; the others wait for it.
func (db *DB) waitDurable(seq uint64) error {
	db.syncMu.Lock()
	defer db.syncMu.Unlock()
	for db.durable < seq {
		if db.syncing {
			db.syncCond.Wait()
			continue
		}
		db.syncing = true
		db.syncMu.Unlock()
		target, err := db.flushData()
		db.syncMu.Lock()
		db.syncing = false
		if err == nil && target > db.durable {
			db.durable = target
		}
		db.syncCond.Broadcast()
		if err != nil {
			return err
		}
	}
	return nil
}

// flushData fdatasyncs the current file and returns the write count it
// covers.
func (db *DB) flushData() (uint64, error) {
	db.writeMu.Lock()
	target := db.written
	g, err := db.acquire()
	db.writeMu.Unlock()
	if err != nil {
		return 0, err
	}
	defer g.release()
	if testHookGroupSync != nil {
		testHookGroupSync()
	}
	db.groupSyncs.Add(1)
	if err := fdatasync(g.f); err != nil {
		return 0, fmt.Errorf("store: fdatasync: %w", err)
	}
	return target, nil
}
