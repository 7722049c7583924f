package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// mapReserve is the size of the shared mapping made for each file. The
// log is read (and, where fallocate succeeded, written) through it;
// offsets past it fall back to pread/pwrite. Tests shrink it.
var mapReserve int64 = 1 << 36

// heapSlots makes new generations keep the slot table in heap memory,
// written to the file at each checkpoint, instead of in the mapping. The
// race detector cannot see mmap'd memory; tests set this.
var heapSlots = false

// gen is one open file: a generation of the store. Compaction replaces
// the current generation with a new one; readers holding a reference to
// the old one finish on it.
type gen struct {
	f        *os.File
	m        []byte   // shared mapping of [0, len(m))
	slots    []uint64 // nbuckets*8 slots, in m or on the heap
	heap     bool     // slots live on the heap
	nbuckets uint64
	apow     uint8
	logStart int64

	hdr  header                 // last header written; guarded by DB.ckptMu (or private)
	snap atomic.Pointer[header] // copy of hdr for lock-free Stats
	ckpt atomic.Int64           // checkpoint offset C of hdr

	// Writer state, guarded by DB.writeMu once the generation is shared.
	allocEnd int64 // file bytes known to be allocated (file size)
	// popEnd: mapping bytes below it were faulted in writable ahead of the
	// log (populateWrite); -1 once the kernel refused.
	popEnd int64

	logEnd atomic.Int64 // end of the log; written under writeMu
	// pubEnd is the end of the published log: every record below it has
	// its slot stored. A writer advances logEnd before it publishes the
	// slot (R1), so a scan that judges liveness by the slots must stop at
	// pubEnd, not logEnd: the record between them looks dead until its
	// writer's next atomic store. Written under writeMu, after the slot.
	pubEnd atomic.Int64
	rnum   atomic.Int64 // live keys (including tombstones)
	tombs  atomic.Int64 // live tombstones (counted in rnum too)
	tombB  atomic.Int64 // aligned bytes of live tombstones (counted in live too)
	live   atomic.Int64 // aligned bytes of live records
	del    atomic.Int64 // removed slots

	refs     atomic.Int64 // 1 while current, plus one per reader
	once     sync.Once
	done     chan struct{} // closed after teardown
	closeErr error
}

// mapGen maps file f (of the given size) described by header h.
func mapGen(f *os.File, h header, size int64) (*gen, error) {
	g := &gen{f: f, hdr: h, apow: h.apow, logStart: int64(h.logStart), nbuckets: h.bnum / slotsPerBkt,
		allocEnd: size, done: make(chan struct{})}
	g.refs.Store(1)
	g.snap.Store(&h)
	g.ckpt.Store(int64(h.checkpoint))
	// Give the slot table real blocks before it is mapped: on a full disk
	// (or a full tmpfs, where even a read of a hole allocates) touching an
	// unbacked page of a mapping raises SIGBUS, which would kill the
	// process instead of failing a write.
	if err := fallocate(f, 0, g.logStart); errors.Is(err, syscall.ENOSPC) {
		return nil, fmt.Errorf("store: no space for the slot table: %w", err)
	}
	n := max(mapReserve, g.logStart)
	var err error
	for {
		g.m, err = mmap(f.Fd(), int(n))
		if err == nil || n <= g.logStart {
			break
		}
		n = max(n/4, g.logStart)
	}
	if err != nil {
		return nil, err
	}
	nslots := int(h.bnum)
	if heapSlots {
		g.heap = true
		g.slots = make([]uint64, nslots)
		b := g.m[slotsOffset : slotsOffset+8*nslots]
		for i := range g.slots {
			g.slots[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
	} else {
		g.slots = unsafe.Slice((*uint64)(unsafe.Pointer(&g.m[slotsOffset])), nslots)
	}
	return g, nil
}

// release drops one reference; the last one unmaps and closes the file.
func (g *gen) release() {
	if g.refs.Add(-1) == 0 {
		g.once.Do(g.teardown)
	}
}

func (g *gen) teardown() {
	err := munmap(g.m)
	if cerr := g.f.Close(); err == nil {
		err = cerr
	}
	g.closeErr = err
	close(g.done)
}

// view returns the n file bytes at off, from the mapping when it covers
// them, else read into *scratch. The bytes must be below logEnd.
func (g *gen) view(off int64, n int, scratch *[]byte) ([]byte, error) {
	if off+int64(n) <= int64(len(g.m)) {
		return g.m[off : off+int64(n) : off+int64(n)], nil
	}
	if cap(*scratch) < n {
		*scratch = make([]byte, n)
	}
	b := (*scratch)[:n]
	if _, err := g.f.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

// record returns the whole unpadded record at off (below limit) with its
// header checked but not its CRC.
func (g *gen) record(off, limit int64, scratch *[]byte) ([]byte, int, int, byte, error) {
	if off+recHdrSize > limit {
		return nil, 0, 0, 0, ErrCorrupt
	}
	p, err := g.view(off, recHdrSize, scratch)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	klen, vlen, rf, err := recHead(p)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	n := recHdrSize + klen + vlen
	if off+int64(n) > limit {
		return nil, 0, 0, 0, ErrCorrupt
	}
	p, err = g.view(off, n, scratch)
	return p, klen, vlen, rf, err
}

// appendLog writes p at the log end and advances it. The caller holds
// writeMu (or owns g). Space inside the mapping is reserved with
// fallocate; a record shorter than pwriteMin is written there with memcpy,
// a longer one (and one outside the reserved space) with pwrite.
func (g *gen) appendLog(p []byte) (int64, error) {
	off := g.logEnd.Load()
	end := off + int64(len(p))
	if end <= int64(len(g.m)) {
		if end > g.allocEnd {
			chunk := min(max(g.allocEnd-g.logStart, 1<<20), 64<<20)
			want := min(max(end, g.allocEnd+chunk), int64(len(g.m)))
			if fallocate(g.f, g.allocEnd, want-g.allocEnd) == nil {
				g.allocEnd = want
			}
		}
		if end <= g.allocEnd && len(p) < pwriteMin {
			if end > g.popEnd && g.popEnd >= 0 {
				g.populate(off, end)
			}
			copy(g.m[off:end], p)
			g.logEnd.Store(end)
			return off, nil
		}
	}
	if _, err := g.f.WriteAt(p, off); err != nil {
		return 0, err
	}
	g.allocEnd = max(g.allocEnd, end)
	g.logEnd.Store(end)
	return off, nil
}

// pwriteMin is the record size from which appendLog writes with pwrite
// instead of memcpy into the mapping. Through the mapping, each fresh page
// of the log is first faulted in (filled with zeros), then marked dirty
// (page_mkwrite), and write-protected again when writeback cleans it
// (with a TLB shootdown on every CPU the process ran on): a 1 MB value
// cost 1.4-2 ms, with tails of 30-200 ms on a loaded machine. pwrite
// copies whole pages straight into the page cache (1 MB: about 0.5-0.7
// ms; BenchmarkPut1MFresh). Readers see the bytes through the mapping
// all the same: it shares the page cache. Small records keep memcpy, which
// spares them a system call each.
const pwriteMin = 64 << 10

// populateAhead is how far past a write the log's pages are faulted in at
// once: a fresh page otherwise costs two faults (read of the unwritten
// extent, then write), about one per four 1 KiB records.
const populateAhead = 256 << 10

// populate faults the pages of [off, end) and populateAhead beyond (within
// the allocated file) in writable with one madvise. Only an optimization:
// on failure the pages fault one by one as before.
func (g *gen) populate(off, end int64) {
	page := int64(os.Getpagesize())
	// popEnd is where the last call stopped: the allocated end when that
	// came first, which need not be a page boundary (a record longer
	// than the growth chunk is allocated to its own end). madvise wants a
	// page-aligned start (EINVAL otherwise, which would turn populating
	// off for good), so start at the page holding it.
	from := max(g.popEnd, off) &^ (page - 1)
	to := min(g.allocEnd, (end+populateAhead+page-1)&^(page-1))
	if from >= to {
		return
	}
	if populateWrite(g.m[from:to]) != nil {
		g.popEnd = -1
		return
	}
	g.popEnd = to
}

// writeHeader writes h (with the next seq) to its copy and fdatasyncs.
func (g *gen) writeHeader(h header) error {
	h.seq = g.hdr.seq + 1
	off := int64(0)
	if h.seq%2 == 1 {
		off = headerCopyB
	}
	if _, err := g.f.WriteAt(appendHeader(nil, &h), off); err != nil {
		return err
	}
	if err := fdatasync(g.f); err != nil {
		return err
	}
	g.hdr = h
	g.snap.Store(&h)
	g.ckpt.Store(int64(h.checkpoint))
	return nil
}

// flushSlots makes the slot table durable (before fdatasync).
func (g *gen) flushSlots() error {
	if !g.heap {
		return msync(g.m[:g.logStart])
	}
	const chunk = 8192
	buf := make([]byte, 8*chunk)
	for i := 0; i < len(g.slots); i += chunk {
		n := min(chunk, len(g.slots)-i)
		for j := 0; j < n; j++ {
			binary.LittleEndian.PutUint64(buf[8*j:], atomic.LoadUint64(&g.slots[i+j]))
		}
		if _, err := g.f.WriteAt(buf[:8*n], slotsOffset+8*int64(i)); err != nil {
			return err
		}
	}
	return nil
}

// checkpointPrivate checkpoints a generation no other goroutine uses.
func (g *gen) checkpointPrivate(flags uint16) error {
	if err := g.flushSlots(); err != nil {
		return err
	}
	if err := fdatasync(g.f); err != nil {
		return err
	}
	h := g.hdr
	h.flags = flags
	g.fillCounters(&h, g.logEnd.Load())
	return g.writeHeader(h)
}

func (g *gen) fillCounters(h *header, end int64) {
	h.checkpoint, h.logEnd = uint64(end), uint64(end)
	h.rnum, h.liveBytes, h.delSlots = uint64(g.rnum.Load()), uint64(g.live.Load()), uint64(g.del.Load())
	h.tombs, h.tombBytes = uint64(g.tombs.Load()), uint64(g.tombB.Load())
	h.modified = nowNano()
}
