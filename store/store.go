// Package store is kumo's storage engine: one file per server holding an
// mmap'd bucket array of 8-byte slots followed by an append-only log of
// CRC32C-checked records.
//
// Readers take no locks: Get loads slots with atomic loads and reads the
// immutable record bytes they point at. Writers serialize on one mutex,
// append a record, then publish it with one atomic slot store. Space held
// by overwritten, removed and expired records is reclaimed online by
// Compact, which rewrites the live records into a new file and swaps it
// in while readers finish on the old one. The file format and the crash
// recovery rules are described in FORMAT.md.
package store

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"kumofs/internal/durable"
)

// Errors returned by the store.
var (
	// ErrNotFound is returned by Get when the key has no record.
	ErrNotFound = errors.New("store: not found")
	// ErrLocked is returned by Open when another process (or another
	// DB in this process) has the file open.
	ErrLocked = errors.New("store: locked")
	// ErrCorrupt is returned when a record or the index before the last
	// checkpoint fails its checks.
	ErrCorrupt = errors.New("store: corrupt data; run kumo-storetool repair")
	// ErrBadHeader is returned by Open when neither header copy is valid.
	ErrBadHeader = errors.New("store: bad file header (not a kumo store, or damaged; run kumo-storetool repair)")
	// ErrNoRecords is returned by Repair when neither header copy is
	// valid and no record can be found in the file either.
	ErrNoRecords = errors.New("store: no header and no records found (not a kumo store, or nothing left to recover)")
	// ErrClosed is returned by operations on a closed DB.
	ErrClosed = errors.New("store: closed")
	// ErrFull is returned by a write when the bucket array has no free
	// slot left for a new key.
	ErrFull = errors.New("store: bucket array full; run kumo-storetool optimize")
	// ErrInvalid is returned for an empty or oversized key or value.
	ErrInvalid = errors.New("store: invalid key or value size")
	// ErrExist is returned by Create when the file already exists.
	ErrExist = errors.New("store: file exists")
)

// DefaultBuckets is the bucket number (slot capacity) used when Open
// creates a missing file and Options.Buckets is 0.
const DefaultBuckets = 1 << 20

// Record is one key's stored version.
type Record struct {
	Key       []byte
	Value     []byte
	Clock     uint64 // ClockTime: (unix_seconds << 32) | counter; compare as plain uint64
	Flags     uint32 // memcached flags
	Exptime   uint32 // absolute unix seconds, 0 = never
	Tombstone bool   // a cluster delete: Value empty, Clock = time of the delete

	// Lease state of a value (memcached's meta commands); always false
	// for a tombstone.
	Stale     bool // marked stale (md I, ms I): served with X until replaced
	TokenSent bool // a recache win token (mg W) is out: others get Z

	// Cas is the value's CAS unique when it is not Clock (0: it is Clock):
	// a touch gives a value a new Clock but keeps its CAS unique, as
	// memcached does. Not stored for a tombstone.
	Cas uint64
}

// CAS returns the record's CAS unique: Cas, or Clock when Cas is 0.
func (r *Record) CAS() uint64 {
	if r.Cas != 0 {
		return r.Cas
	}
	return r.Clock
}

// Options configure Open. The zero value (or nil) means SyncInterval with
// a one-second interval.
type Options struct {
	Sync         SyncPolicy
	SyncInterval time.Duration // for SyncInterval and SyncAlways checkpoints; default 1s

	// Buckets is the slot capacity used only when Open creates the file.
	Buckets uint64
}

// DB is an open store. All methods are safe for concurrent use.
//
// Lock order: compactMu, then ckptMu, then writeMu, then syncMu.
type DB struct {
	path string
	opt  Options

	// cur is the current file generation. Readers Load it and take a
	// reference; Compact swaps it under writeMu.
	cur atomic.Pointer[gen]

	compactMu sync.Mutex // serializes Compact, Optimize and Backup

	ckptMu sync.Mutex // serializes checkpoints and file swaps

	writeMu sync.Mutex // protects the fields below and every gen's log tail
	closed  bool
	written uint64 // count of acknowledged writes
	wbuf    []byte // record encoding buffer
	rbuf    []byte // scratch for reading records outside the mapping
	old     Record // the record shown to an Update or Delete predicate

	syncMu   sync.Mutex // protects durable and syncing
	syncCond *sync.Cond
	durable  uint64 // writes up to this count are on stable storage
	syncing  bool   // a group-commit leader is in fdatasync

	groupSyncs atomic.Uint64 // fdatasyncs run by group-commit leaders

	closing  atomic.Bool
	stop     chan struct{} // closed by Close to stop the syncer
	syncDone chan struct{} // closed when the syncer has exited
	ckptSeq  atomic.Uint64 // value of written at the last checkpoint
}

// Create creates a new, empty store file with the given slot capacity
// (rounded up to a multiple of 8; 0 means DefaultBuckets). It fails with
// ErrExist if path exists.
func Create(path string, buckets uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return ErrExist
		}
		return err
	}
	err = initFile(f, buckets)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	return syncDir(path)
}

// initFile writes a fresh header into the empty file f.
func initFile(f *os.File, buckets uint64) error {
	if buckets == 0 {
		buckets = DefaultBuckets
	}
	buckets = (buckets + slotsPerBkt - 1) &^ (slotsPerBkt - 1)
	if buckets > 1<<36 {
		return ErrInvalid
	}
	now := time.Now().UnixNano()
	h := header{apow: defaultApow, seq: 1, bnum: buckets, logStart: logStartFor(buckets), created: now, modified: now}
	h.checkpoint, h.logEnd = h.logStart, h.logStart
	if err := f.Truncate(int64(h.logStart)); err != nil {
		return err
	}
	if _, err := f.WriteAt(appendHeader(nil, &h), 0); err != nil {
		return err
	}
	return fdatasync(f)
}

// Open opens the store at path, creating it with opt.Buckets slots if it
// does not exist. It fails at once with ErrLocked if the file is open
// elsewhere. After a crash it recovers: a torn tail is cut, and damage
// before the last checkpoint is refused with ErrCorrupt.
func Open(path string, opt *Options) (*DB, error) {
	db := &DB{path: path}
	if opt != nil {
		db.opt = *opt
	}
	if db.opt.SyncInterval <= 0 {
		db.opt.SyncInterval = time.Second
	}
	g, err := openGen(path, db.opt.Buckets, true)
	if err != nil {
		return nil, err
	}
	os.Remove(path + compactSuffix) // a compaction that crashed
	db.syncCond = sync.NewCond(&db.syncMu)
	db.cur.Store(g)
	if err := db.markOpen(g); err != nil {
		g.release()
		<-g.done
		return nil, err
	}
	db.stop = make(chan struct{})
	db.syncDone = make(chan struct{})
	if db.opt.Sync == SyncNone {
		close(db.syncDone)
	} else {
		go db.syncLoop()
	}
	return db, nil
}

// openGen opens (creating if create and missing), locks, maps and if
// needed recovers the file at path.
func openGen(path string, buckets uint64, create bool) (*gen, error) {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	if err := flock(f.Fd()); err != nil {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() == 0 {
		if err := initFile(f, buckets); err != nil {
			f.Close()
			return nil, err
		}
		st, _ = f.Stat()
	}
	h, err := readHeader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	g, err := mapGen(f, h, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	if h.flags&flagOpen != 0 || h.logEnd != h.checkpoint || st.Size() < int64(h.checkpoint) {
		err = g.recover(st.Size())
	} else {
		g.logEnd.Store(int64(h.checkpoint))
		g.rnum.Store(int64(h.rnum))
		g.live.Store(int64(h.liveBytes))
		g.del.Store(int64(h.delSlots))
		g.tombs.Store(int64(h.tombs))
		g.tombB.Store(int64(h.tombBytes))
		if !h.hasTombs || !h.hasTombBytes {
			// Written before headers counted tombstones (or their
			// bytes): count them once (every later header does).
			var scratch []byte
			err = g.recount(&scratch)
		}
	}
	if err != nil {
		g.release()
		<-g.done
		return nil, err
	}
	g.pubEnd.Store(g.logEnd.Load())
	return g, nil
}

// readHeader returns the valid header copy with the higher seq.
func readHeader(f *os.File) (header, error) {
	var p [headerCopyB + headerSize]byte
	n, _ := f.ReadAt(p[:], 0)
	a, errA := decodeHeader(p[:min(n, headerSize)])
	var b header
	errB := ErrBadHeader
	if n >= headerCopyB+headerSize {
		b, errB = decodeHeader(p[headerCopyB:])
	}
	switch {
	case errA == nil && (errB != nil || a.seq >= b.seq):
		return a, nil
	case errB == nil:
		return b, nil
	}
	return header{}, ErrBadHeader
}

// markOpen sets the OPEN flag on disk before any write is accepted.
func (db *DB) markOpen(g *gen) error {
	h := g.hdr
	h.flags |= flagOpen
	return g.writeHeader(h)
}

// Path returns the file name the DB was opened with.
func (db *DB) Path() string { return db.path }

// Close checkpoints the store, clears the OPEN flag, trims preallocated
// space and releases the file. Readers still running finish first.
func (db *DB) Close() error {
	db.closing.Store(true)
	db.compactMu.Lock()
	defer db.compactMu.Unlock()
	db.writeMu.Lock()
	if db.closed {
		db.writeMu.Unlock()
		return ErrClosed
	}
	db.closed = true
	db.writeMu.Unlock()
	close(db.stop)
	<-db.syncDone
	err := db.checkpoint(true)
	g := db.cur.Load()
	if err == nil {
		err = g.f.Truncate(g.logEnd.Load())
	}
	db.cur.Store(nil)
	g.release()
	<-g.done
	if err == nil {
		err = g.closeErr
	}
	db.syncMu.Lock()
	db.syncCond.Broadcast()
	db.syncMu.Unlock()
	return err
}

// acquire returns the current generation with a reference held; the
// caller must release it.
func (db *DB) acquire() (*gen, error) {
	for {
		g := db.cur.Load()
		if g == nil {
			return nil, ErrClosed
		}
		g.refs.Add(1)
		if db.cur.Load() == g {
			return g, nil
		}
		g.release()
	}
}

// syncDir fsyncs the directory holding path, so a create or rename is
// durable.
func syncDir(path string) error { return durable.SyncDir(filepath.Dir(path)) }
