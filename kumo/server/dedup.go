package server

import (
	"sync"

	"kumofs/proto/msgpack"
)

// dedupSize is how many recent writes a server remembers by request id.
const dedupSize = 1 << 16

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
// The oldest of dedupSize entries is forgotten first: a gateway retries
// for seconds, so only writes that old can be applied twice. A rebalance
// copy of a version that a remembered write produced carries its id too
// (byVersion), so that a new owner that got the version answers a retry
// sent to it after the ring changed. With a file (the request-id file,
// see dedupFile) the table survives a restart of the server: a retry that
// reaches a coordinator killed and started again meanwhile is answered,
// not applied a second time.
type dedupTable struct {
	mu        sync.Mutex              // protects everything below and writes to file's mapping
	m         map[uint64]int32        // id → its slot
	slots     []dedupSlot             // a ring of dedupSize; next is the oldest
	byVersion map[dedupVersion]uint64 // the id whose write produced a version
	next      int
	seq       uint64     // the seq of the newest slot
	file      *dedupFile // nil: in memory only
}

// dedupSlot is one remembered write: its id (0: the slot is free), its
// outcome and its insertion number, which orders the slots of a file
// read back after a restart.
type dedupSlot struct {
	id  uint64
	seq uint64
	e   dedupEntry
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
	return &dedupTable{m: make(map[uint64]int32), byVersion: make(map[dedupVersion]uint64),
		slots: make([]dedupSlot, dedupSize)}
}

// attach makes f the table's file: the table, which must be empty, takes
// the writes f remembers, and every later change is written to f.
func (d *dedupTable) attach(f *dedupFile) {
	d.mu.Lock()
	defer d.mu.Unlock()
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
		i = int32(d.next)
		if old := d.slots[i]; old.id != 0 {
			d.unindex(old.id, old.e)
			delete(d.m, old.id)
		}
		d.seq++
		d.slots[i] = dedupSlot{id: id, seq: d.seq, e: e}
		d.m[id] = i
		d.next = (d.next + 1) % len(d.slots)
	}
	d.byVersion[dedupVersion{e.h, e.clock}] = id
	if d.file != nil {
		d.file.write(int(i), &d.slots[i])
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
