package server

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"kumofs/proto/msgpack"
)

// Sizing of the dedup table. It starts with dedupSize slots and doubles
// when the write it would forget to make room is younger than dedupKeep,
// up to dedupMaxSize slots: a gateway retries a write for 10 s by default
// (kumo-gateway --retry-timeout), so an id must outlive that however fast
// the writes with ids come; a table at its largest forgets its oldest id
// whatever its age, which the server logs. It never shrinks while the
// server runs.
const (
	dedupSize    = 1 << 16
	dedupMaxSize = 1 << 20
	dedupKeep    = 30 // seconds
)

// numStripes is the number of lock stripes that serialize the
// read-modify-writes of a coordinator (Server.stripes), and of pending
// slots in the request-id file.
const numStripes = 4096

// dedupTable remembers the outcome of recent writes that carry a request
// id (incr, decr, append, prepend: the writes that must not be applied
// twice), so that a gateway that lost the answer can send the same write
// again and get the first outcome instead of a second increment. The
// coordinator notes a write when it stores it; replicas note it from the
// replication message, so the answer survives the coordinator's death.
// The oldest entry is forgotten first, and only once it is older than
// dedupKeep or the table has dedupMaxSize entries (see the sizing above):
// only writes that old can be applied twice. A rebalance
// copy of a version that a remembered write produced carries its id too
// (byVersion), so that a new owner that got the version answers a retry
// sent to it after the ring changed. With a file (the request-id file,
// see dedupFile) the table survives a restart of the server: a retry that
// reaches a coordinator killed and started again meanwhile is answered,
// not applied a second time.
type dedupTable struct {
	// Set before use, then read-only: how long an entry is kept at
	// least (seconds; 0: the ring never grows), the most slots it grows
	// to, the clock (unix seconds), and where growing (infof) and
	// forgetting young ids (warnf) are logged (nil: not logged).
	keep         int64
	maxSlots     int
	now          func() int64
	infof, warnf func(format string, args ...any)

	mu        sync.Mutex              // protects everything below and writes to file's mapping
	m         map[uint64]int32        // id → its slot
	slots     []dedupSlot             // a ring; next is the oldest
	byVersion map[dedupVersion]uint64 // the id whose write produced a version
	byKey     map[uint64]int32        // key hash → the slot of its newest write (see olderIDs)
	next      int
	seq       uint64     // the seq of the newest slot
	file      *dedupFile // nil: in memory only
	warned    int64      // when forgetting a young entry was last logged
}

// dedupSlot is one remembered write: its id (0: the slot is free), its
// outcome, its insertion number, which orders the slots of a file read
// back after a restart, and when it was noted (unix seconds).
type dedupSlot struct {
	id  uint64
	seq uint64
	e   dedupEntry
	at  uint32
	// prev is the slot of the write on the same key noted before this
	// one (-1: none), valid only while that slot holds the same key with
	// a lower seq; in memory only (see olderIDs).
	prev int32
}

// dedupVersion names a version of a key: the key's hash and its clock.
type dedupVersion struct{ h, clock uint64 }

// dedupEntry is the outcome of one write: the key's hash, its version
// and, for incr and decr, the reply's number, whether it created the item
// and the exptime the item had before.
type dedupEntry struct {
	h       uint64
	clock   uint64
	num     uint64
	created bool
	oldExp  uint32
}

func newDedupTable() *dedupTable {
	return &dedupTable{keep: dedupKeep, maxSlots: dedupMaxSize, now: unixNow,
		m: make(map[uint64]int32), byVersion: make(map[dedupVersion]uint64),
		byKey: make(map[uint64]int32), slots: make([]dedupSlot, dedupSize)}
}

func unixNow() int64 { return time.Now().Unix() }

// attach makes f the table's file: the table, which must be empty, takes
// the writes f remembers, and every later change is written to f.
func (d *dedupTable) attach(f *dedupFile) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.slots) != f.slots {
		d.slots = make([]dedupSlot, f.slots)
	}
	newest := -1
	for i := range d.slots {
		sl, ok := f.read(i)
		if !ok {
			continue
		}
		if j, dup := d.m[sl.id]; dup { // cannot happen: an id is updated in place
			if d.slots[j].seq > sl.seq {
				continue
			}
			d.unindex(d.slots[j].id, d.slots[j].e)
			d.slots[j] = dedupSlot{}
		}
		d.slots[i] = sl
		d.m[sl.id] = int32(i)
		d.byVersion[dedupVersion{sl.e.h, sl.e.clock}] = sl.id
		if newest < 0 || sl.seq > d.seq {
			newest, d.seq = i, sl.seq
		}
	}
	d.next = (newest + 1) % len(d.slots)
	d.file = f
	// The chains of writes per key, in the order they were noted.
	order := make([]int32, 0, len(d.m))
	for _, i := range d.m {
		order = append(order, i)
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(d.slots[a].seq, d.slots[b].seq) })
	for _, i := range order {
		d.chain(i)
	}
}

// chain links slot i, just filled, to the newest earlier write on its key.
// The caller holds d.mu.
func (d *dedupTable) chain(i int32) {
	h := d.slots[i].e.h
	d.slots[i].prev = -1
	if j, ok := d.byKey[h]; ok && j != i {
		d.slots[i].prev = j
	}
	d.byKey[h] = i
}

// detach stops writing to the table's file and returns it (nil if none).
func (d *dedupTable) detach() *dedupFile {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.file
	d.file = nil
	return f
}

// len returns the number of writes remembered.
func (d *dedupTable) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}

// sizes returns the number of writes remembered and how many the ring
// holds now.
func (d *dedupTable) sizes() (n, capacity int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m), len(d.slots)
}

// get returns the outcome of write id, if remembered.
func (d *dedupTable) get(id uint64) (dedupEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i, ok := d.m[id]; ok {
		return d.slots[i].e, true
	}
	return dedupEntry{}, false
}

// put remembers (or updates) the outcome of write id.
func (d *dedupTable) put(id uint64, e dedupEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.putLocked(id, e)
}

// begin notes that write id, with outcome e, is about to be stored under
// dbkey by the holder of lock stripe j: pending slot j of the file keeps
// it until commit or abort, so that a kill between storing the write and
// noting its id cannot lose the id (see dedupFile).
func (d *dedupTable) begin(j int, id uint64, e *dedupEntry, dbkey []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.file != nil {
		d.file.writePending(j, id, e, dbkey)
	}
}

// commit remembers the outcome of write id, stored, and frees pending
// slot j.
func (d *dedupTable) commit(j int, id uint64, e dedupEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.putLocked(id, e)
	if d.file != nil {
		d.file.clearPending(j)
	}
}

// abort frees pending slot j: its write was not stored.
func (d *dedupTable) abort(j int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.file != nil {
		d.file.clearPending(j)
	}
}

// putLocked is put; the caller holds d.mu.
func (d *dedupTable) putLocked(id uint64, e dedupEntry) {
	i, ok := d.m[id]
	if ok {
		d.unindex(id, d.slots[i].e)
		d.slots[i].e = e
	} else {
		now := d.now()
		if old := d.slots[d.next]; old.id != 0 && d.keep > 0 && int64(old.at) > now-d.keep {
			d.makeRoom(now)
		}
		i = int32(d.next)
		if old := d.slots[i]; old.id != 0 {
			d.unindex(old.id, old.e)
			delete(d.m, old.id)
			if d.byKey[old.e.h] == i {
				delete(d.byKey, old.e.h)
			}
		}
		d.seq++
		d.slots[i] = dedupSlot{id: id, seq: d.seq, e: e, at: uint32(now)}
		d.m[id] = i
		d.chain(i)
		d.next = (d.next + 1) % len(d.slots)
	}
	d.byVersion[dedupVersion{e.h, e.clock}] = id
	if d.file != nil {
		d.file.write(int(i), &d.slots[i])
	}
}

// makeRoom doubles the ring, whose oldest entry (at next) is younger than
// d.keep, if it may grow; otherwise that entry is forgotten, which is
// logged at most once a minute. The caller holds d.mu.
func (d *dedupTable) makeRoom(now int64) {
	n := len(d.slots)
	if n*2 > d.maxSlots {
		if now-d.warned >= 60 {
			d.warned = now
			logTo(d.warnf, "request ids: forgetting ids younger than %d s (%d remembered, the most there is room for): a write retried that late would be applied twice", d.keep, n)
		}
		return
	}
	if d.file != nil {
		if err := d.file.grow(2*n, d.next); err != nil {
			d.maxSlots = n // a full disk, say: do not try again at every write
			logTo(d.warnf, "request ids: cannot grow the file past %d ids: %v", n, err)
			return
		}
	}
	// The free half goes where the ring writes next: the slots from next
	// on move up by n.
	slots := make([]dedupSlot, 2*n)
	copy(slots, d.slots[:d.next])
	copy(slots[d.next+n:], d.slots[d.next:])
	for j := d.next; j < n; j++ {
		if id := d.slots[j].id; id != 0 {
			d.m[id] = int32(j + n)
		}
	}
	moved := func(i int32) int32 {
		if i >= int32(d.next) {
			return i + int32(n)
		}
		return i
	}
	for j := range slots {
		if slots[j].id != 0 && slots[j].prev >= 0 {
			slots[j].prev = moved(slots[j].prev)
		}
	}
	for h, i := range d.byKey {
		d.byKey[h] = moved(i)
	}
	d.slots = slots
	logTo(d.infof, "request ids: remembering up to %d writes (the last %d s needed more)", 2*n, d.keep)
}

// logTo logs through logf, if set.
func logTo(logf func(format string, args ...any), format string, args ...any) {
	if logf != nil {
		logf(format, args...)
	}
}

// unindex drops e's version from byVersion if it still names id. The
// caller holds d.mu.
func (d *dedupTable) unindex(id uint64, e dedupEntry) {
	v := dedupVersion{e.h, e.clock}
	if d.byVersion[v] == id {
		delete(d.byVersion, v)
	}
}

// byVersionOf returns the id and outcome of the remembered write that
// produced the version of key hash h stamped clock, if any.
func (d *dedupTable) byVersionOf(h, clock uint64) (uint64, dedupEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.byVersion[dedupVersion{h, clock}]
	if !ok {
		return 0, dedupEntry{}, false
	}
	return id, d.slots[d.m[id]].e, true
}

// maxOlderIDs bounds how many earlier writes of one key olderIDs returns.
const maxOlderIDs = 64

// keyedID is one remembered write: its id and outcome (with its version).
type keyedID struct {
	id uint64
	e  dedupEntry
}

// olderIDs appends to dst the remembered writes on key hash h whose
// versions are older than clock, newest first, at most maxOlderIDs. A
// version copied to a new owner (rebalance, catch-up) holds the effects of
// those writes too, and a retry of one of them that reaches the new owner
// must be answered, not applied again: an append retried during the
// replace after a restarted server's attach was applied twice (hunt 28a),
// because only the id of the write that made the copied version traveled.
func (d *dedupTable) olderIDs(h, clock uint64, dst []keyedID) []keyedID {
	return d.olderSince(h, clock, 0, maxOlderIDs, dst)
}

// Replication carries the ids of the key's writes of the last
// recentIDsAge seconds, at most maxRecentIDs (recentIDs).
const (
	recentIDsAge = 5
	maxRecentIDs = 8
)

// recentIDs is olderIDs for a coordinator replicating a version: the
// writes before it of the last few seconds, whose own replications may
// still be on their way. Those from other read goroutines can reach a
// replica after this one, which holds their effects; the replica then
// keeps this newer version and drops theirs unremembered, and a retry of
// one of them after the coordinator died was applied a second time there
// (hunt 28c).
func (d *dedupTable) recentIDs(h, clock uint64, dst []keyedID) []keyedID {
	return d.olderSince(h, clock, d.now()-recentIDsAge, maxRecentIDs, dst)
}

// olderSince is olderIDs for writes noted at since (unix seconds) or
// later, at most limit.
func (d *dedupTable) olderSince(h, clock uint64, since int64, limit int, dst []keyedID) []keyedID {
	d.mu.Lock()
	defer d.mu.Unlock()
	i, ok := d.byKey[h]
	seq := ^uint64(0)
	for n := 0; ok && i >= 0 && n < limit; {
		sl := &d.slots[i]
		if sl.id == 0 || sl.e.h != h || sl.seq >= seq || int64(sl.at) < since {
			break
		}
		if sl.e.clock < clock {
			dst = append(dst, keyedID{sl.id, sl.e})
			n++
		}
		seq, i = sl.seq, sl.prev
	}
	return dst
}

// appendDedupAt appends an earlier write of a copied version's key, as
// appendDedup with the clock of the version it made:
// [id, num, created, old_exptime, clock].
func appendDedupAt(b []byte, k *keyedID) []byte {
	b = msgpack.AppendArrayHeader(b, 5)
	b = msgpack.AppendUint(b, k.id)
	b = msgpack.AppendUint(b, k.e.num)
	b = msgpack.AppendBool(b, k.e.created)
	b = msgpack.AppendUint(b, uint64(k.e.oldExp))
	return msgpack.AppendUint(b, k.e.clock)
}

// readDedupAt decodes appendDedupAt's parameter; the caller sets e.h.
func readDedupAt(p []byte) (id uint64, e dedupEntry, err error) {
	if n, _, err := msgpack.ReadArrayHeader(p); err != nil || n < 5 {
		return 0, e, errParams
	}
	if id, e, err = readDedup(p); err != nil {
		return 0, e, err
	}
	_, p, _ = msgpack.ReadArrayHeader(p)
	for range 4 {
		if p, err = msgpack.Skip(p); err != nil {
			return 0, e, errParams
		}
	}
	if e.clock, _, err = msgpack.ReadUint(p); err != nil || id == 0 {
		return 0, e, errParams
	}
	return id, e, nil
}

// appendDedup appends the replication message's optional last parameter,
// [id, num, created, old_exptime], which lets a replica remember the write.
func appendDedup(b []byte, id uint64, e *dedupEntry) []byte {
	b = msgpack.AppendArrayHeader(b, 4)
	b = msgpack.AppendUint(b, id)
	b = msgpack.AppendUint(b, e.num)
	b = msgpack.AppendBool(b, e.created)
	return msgpack.AppendUint(b, uint64(e.oldExp))
}

// readDedup decodes appendDedup's parameter.
func readDedup(p []byte) (id uint64, e dedupEntry, err error) {
	n, p, err := msgpack.ReadArrayHeader(p)
	if err != nil || n < 4 {
		return 0, e, errParams
	}
	if id, p, err = msgpack.ReadUint(p); err != nil {
		return 0, e, errParams
	}
	if e.num, p, err = msgpack.ReadUint(p); err != nil {
		return 0, e, errParams
	}
	if e.created, p, err = msgpack.ReadBool(p); err != nil {
		return 0, e, errParams
	}
	var x uint64
	if x, _, err = msgpack.ReadUint(p); err != nil {
		return 0, e, errParams
	}
	e.oldExp = uint32(x)
	return id, e, nil
}

// noteOlderIDs remembers the earlier writes of key hash h that a copied
// version carried: count appendDedupAt elements starting at p. Called once
// the version is stored: it holds their effects.
func (s *Server) noteOlderIDs(h uint64, p []byte, count int) {
	for range count {
		if id, e, err := readDedupAt(p); err == nil {
			e.h = h
			s.dedup.put(id, e)
		}
		var err error
		if p, err = msgpack.Skip(p); err != nil {
			return
		}
	}
}
