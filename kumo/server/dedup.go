package server

import (
	"sync"

	"kumofs/proto/msgpack"
)

// dedupSize is how many recent writes a server remembers by request id.
const dedupSize = 1 << 16

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
// sent to it after the ring changed.
type dedupTable struct {
	mu        sync.Mutex // protects m, byVersion, ring and next
	m         map[uint64]dedupEntry
	byVersion map[dedupVersion]uint64 // the id whose write produced a version
	ring      []uint64                // ids in insertion order, for eviction
	next      int
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
	return &dedupTable{m: make(map[uint64]dedupEntry), byVersion: make(map[dedupVersion]uint64),
		ring: make([]uint64, dedupSize)}
}

// get returns the outcome of write id, if remembered.
func (d *dedupTable) get(id uint64) (dedupEntry, bool) {
	d.mu.Lock()
	e, ok := d.m[id]
	d.mu.Unlock()
	return e, ok
}

// put remembers (or updates) the outcome of write id.
func (d *dedupTable) put(id uint64, e dedupEntry) {
	d.mu.Lock()
	if prev, ok := d.m[id]; ok {
		d.unindex(id, prev)
	} else {
		if old := d.ring[d.next]; old != 0 {
			d.unindex(old, d.m[old])
			delete(d.m, old)
		}
		d.ring[d.next] = id
		d.next = (d.next + 1) % len(d.ring)
	}
	d.m[id] = e
	d.byVersion[dedupVersion{e.h, e.clock}] = id
	d.mu.Unlock()
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
	return id, d.m[id], true
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
