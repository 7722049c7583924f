package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
)

// The request-id file, <StorePath>.ids, keeps the dedup table across a
// restart. It is written in place through a shared mapping, one 64-byte
// slot per remembered write (the table's ring), so a write costs no
// system call; a process killed with SIGKILL leaves every
// completed slot write in the page cache, and one torn by the kill fails
// its checksum and is ignored, as if that write had no id. Like the
// store's last second of writes, slots not yet written back by the kernel
// are lost if the machine itself crashes.
//
// A coordinator stores a write and notes its id one after the other; a
// kill between the two would leave the write applied and its id unknown.
// So before storing it writes the id, the outcome and the key into the
// pending slot of the write's lock stripe (there is one write per stripe
// at a time), and clears that slot once the id is in the ring. At start,
// a pending slot whose key holds exactly the version it names was stored:
// its id joins the table (Server.resolvePendingIDs); any other was not.
// Layout, little-endian:
//
//	header    64 bytes: magic "kumoreqi", version uint32 2, slots uint32,
//	          pending uint32, zero
//	pending j 384 bytes at 64 + 384·j:
//	          0 a slot as below (seq 0)    64 key length uint16 (<= maxPendingKey)
//	          66 the DBKey, zero-padded    380 CRC-32C of bytes [64, 380)
//	slot i    64 bytes after the pending slots, at 64 + 384·pending + 64·i:
//	          0 id uint64 (0: free)   8 key hash      16 clock     24 num
//	          32 seq uint64           40 old exptime uint32        44 created (0 or 1)
//	          45..47 zero             48 noted at, unix seconds uint32
//	          52..59 zero             60 CRC-32C (Castagnoli) of bytes [0, 60)
//
// The ring grows (dedupTable.makeRoom) by doubling the slots: the file is
// extended, the slots from the ring's next position on are copied to the
// new end, the header takes the new count, and the old copies are
// cleared. A kill before the header changes leaves the old count in
// force (the file may be longer than it says); one after leaves an entry
// twice, which the next open reads once.
//
// A file of another version, pending count or a slot count that is not
// the table's initial size doubled (up to its largest) is started afresh:
// it holds only recent ids, whose loss means what a restart meant before
// the file existed (version 1, before the ring could grow, put the pending
// slots after the ring and is started afresh too).
const (
	idsMagic       = "kumoreqi"
	idsVersion     = 2
	idsHeader      = 64
	idsSlotSize    = 64
	idsPendingSize = 384
	maxPendingKey  = idsPendingSize - idsSlotSize - 2 - 4 // a longer key is not protected
)

// errIDsFile reports a request-id file that cannot be created or mapped.
var errIDsFile = errors.New("server: request-id file")

// dedupFile is an open request-id file.
type dedupFile struct {
	f       *os.File
	m       []byte // the shared mapping: header, slots and pending slots
	slots   int
	pending int
}

// openDedupFile opens (creating or starting afresh if needed) the
// request-id file at path for a ring of slots slots, grown to at most
// maxSlots, and pending pending slots. The file's ring may have grown
// (dedupFile.slots says to what). fresh reports that it holds no earlier
// ids. A new file is written out in full, so that a full disk fails here
// and not later as a fault in the mapping.
func openDedupFile(path string, slots, maxSlots, pending int) (d *dedupFile, fresh bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", errIDsFile, err)
	}
	var hdr [idsHeader]byte
	fi, err := f.Stat()
	if err == nil && fi.Size() >= idsHeader {
		_, err = f.ReadAt(hdr[:], 0)
	}
	if err == nil {
		if n, ok := idsFileSlots(hdr, slots, maxSlots, pending); ok && fi.Size() >= int64(idsFileSize(n, pending)) {
			slots = n
		} else {
			fresh = true
			if err = f.Truncate(0); err == nil {
				err = writeZeros(f, 0, idsFileSize(slots, pending))
			}
			if err == nil {
				h := idsFileHeader(slots, pending)
				_, err = f.WriteAt(h[:], 0)
			}
		}
	}
	size := idsFileSize(slots, pending)
	var m []byte
	if err == nil {
		m, err = mapShared(f, size)
	}
	if err != nil {
		if fresh {
			// Give back what a full disk let us write: the store needs it.
			f.Truncate(0)
		}
		f.Close()
		return nil, false, fmt.Errorf("%w %s: %w", errIDsFile, path, err)
	}
	return &dedupFile{f: f, m: m, slots: slots, pending: pending}, fresh, nil
}

// idsFileSize is the size of a request-id file.
func idsFileSize(slots, pending int) int {
	return idsHeader + pending*idsPendingSize + slots*idsSlotSize
}

// idsFileSlots returns the ring size in header h if h is the header of a
// file for a ring of slots slots grown to at most maxSlots and pending
// pending slots.
func idsFileSlots(h [idsHeader]byte, slots, maxSlots, pending int) (int, bool) {
	n := int(binary.LittleEndian.Uint32(h[12:]))
	for m := slots; m <= maxSlots; m *= 2 {
		if m == n && h == idsFileHeader(n, pending) {
			return n, true
		}
	}
	return 0, false
}

// writeZeros writes n zero bytes to f at off, so that the blocks are
// allocated (a full disk fails here, not as a fault in the mapping).
func writeZeros(f *os.File, off int64, n int) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		k, err := f.WriteAt(buf[:min(n, len(buf))], off)
		if err != nil {
			return err
		}
		off += int64(k)
		n -= k
	}
	return nil
}

// grow extends the file to a ring of slots slots (twice d.slots) and moves
// the slots from next on to the new end, as dedupTable.makeRoom does in
// memory. On error the file still holds the ring as it was. d's table
// lock is held.
func (d *dedupFile) grow(slots, next int) error {
	n := d.slots
	size := idsFileSize(slots, d.pending)
	if err := writeZeros(d.f, int64(idsFileSize(n, d.pending)), size-idsFileSize(n, d.pending)); err != nil {
		return err
	}
	m, err := mapShared(d.f, size)
	if err != nil {
		return err
	}
	unmap(d.m)
	d.m = m
	base := idsHeader + d.pending*idsPendingSize
	copy(m[base+(next+n)*idsSlotSize:base+slots*idsSlotSize], m[base+next*idsSlotSize:base+n*idsSlotSize])
	if idsGrowHook != nil {
		idsGrowHook(1)
	}
	h := idsFileHeader(slots, d.pending)
	copy(m, h[:])
	d.slots = slots
	if idsGrowHook != nil {
		idsGrowHook(2)
	}
	clear(m[base+next*idsSlotSize : base+n*idsSlotSize])
	return nil
}

// idsGrowHook, set by tests, is called by dedupFile.grow where a kill
// could leave the file: 1 once the slots are copied, 2 once the header
// says the new size too.
var idsGrowHook func(step int)

// idsFileHeader returns the header of a request-id file.
func idsFileHeader(slots, pending int) [idsHeader]byte {
	var h [idsHeader]byte
	copy(h[:], idsMagic)
	binary.LittleEndian.PutUint32(h[8:], idsVersion)
	binary.LittleEndian.PutUint32(h[12:], uint32(slots))
	binary.LittleEndian.PutUint32(h[16:], uint32(pending))
	return h
}

// close unmaps and closes the file.
func (d *dedupFile) close() error {
	err := unmap(d.m)
	d.m = nil
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// slot returns the bytes of slot i.
func (d *dedupFile) slot(i int) []byte {
	off := idsHeader + d.pending*idsPendingSize + i*idsSlotSize
	return d.m[off : off+idsSlotSize : off+idsSlotSize]
}

// read returns slot i, or false if it is free or fails its checks.
func (d *dedupFile) read(i int) (dedupSlot, bool) { return decodeIDSlot(d.slot(i)) }

// write stores sl in slot i.
func (d *dedupFile) write(i int, sl *dedupSlot) { encodeIDSlot(d.slot(i), sl) }

// pendingSlot returns the bytes of pending slot j.
func (d *dedupFile) pendingSlot(j int) []byte {
	off := idsHeader + j*idsPendingSize
	return d.m[off : off+idsPendingSize : off+idsPendingSize]
}

// writePending notes in pending slot j that the write id, with outcome e,
// is about to be stored under dbkey. It returns false, writing nothing,
// for a key too long for the slot.
func (d *dedupFile) writePending(j int, id uint64, e *dedupEntry, dbkey []byte) bool {
	if len(dbkey) > maxPendingKey {
		return false
	}
	p := d.pendingSlot(j)
	encodeIDSlot(p, &dedupSlot{id: id, e: *e})
	binary.LittleEndian.PutUint16(p[64:], uint16(len(dbkey)))
	n := copy(p[66:], dbkey)
	clear(p[66+n : idsPendingSize-4])
	binary.LittleEndian.PutUint32(p[idsPendingSize-4:], crc32.Checksum(p[64:idsPendingSize-4], castagnoli))
	return true
}

// clearPending frees pending slot j.
func (d *dedupFile) clearPending(j int) {
	binary.LittleEndian.PutUint64(d.pendingSlot(j), 0)
}

// readPending returns the write noted in pending slot j; false if the slot
// is free, torn or malformed. dbkey aliases the mapping.
func (d *dedupFile) readPending(j int) (sl dedupSlot, dbkey []byte, ok bool) {
	return decodePending(d.pendingSlot(j))
}

// decodePending decodes a pending slot (see writePending).
func decodePending(p []byte) (sl dedupSlot, dbkey []byte, ok bool) {
	if len(p) < idsPendingSize {
		return sl, nil, false
	}
	if sl, ok = decodeIDSlot(p); !ok || sl.seq != 0 || sl.at != 0 {
		return dedupSlot{}, nil, false
	}
	n := int(binary.LittleEndian.Uint16(p[64:]))
	if n == 0 || n > maxPendingKey ||
		binary.LittleEndian.Uint32(p[idsPendingSize-4:]) != crc32.Checksum(p[64:idsPendingSize-4], castagnoli) {
		return dedupSlot{}, nil, false
	}
	for _, c := range p[66+n : idsPendingSize-4] {
		if c != 0 {
			return dedupSlot{}, nil, false
		}
	}
	return sl, p[66 : 66+n], true
}

// encodeIDSlot writes sl into p, 64 bytes.
func encodeIDSlot(p []byte, sl *dedupSlot) {
	le := binary.LittleEndian
	le.PutUint64(p[0:], sl.id)
	le.PutUint64(p[8:], sl.e.h)
	le.PutUint64(p[16:], sl.e.clock)
	le.PutUint64(p[24:], sl.e.num)
	le.PutUint64(p[32:], sl.seq)
	le.PutUint32(p[40:], sl.e.oldExp)
	p[44] = 0
	if sl.e.created {
		p[44] = 1
	}
	clear(p[45:48])
	le.PutUint32(p[48:], sl.at)
	clear(p[52:60])
	le.PutUint32(p[60:], crc32.Checksum(p[:60], castagnoli))
}

// decodeIDSlot decodes a 64-byte slot; false if it is free, torn or
// malformed.
func decodeIDSlot(p []byte) (dedupSlot, bool) {
	le := binary.LittleEndian
	if len(p) < idsSlotSize || le.Uint64(p) == 0 || p[44] > 1 ||
		le.Uint32(p[60:]) != crc32.Checksum(p[:60], castagnoli) {
		return dedupSlot{}, false
	}
	if p[45]|p[46]|p[47] != 0 {
		return dedupSlot{}, false
	}
	for _, c := range p[52:60] {
		if c != 0 {
			return dedupSlot{}, false
		}
	}
	return dedupSlot{id: le.Uint64(p), seq: le.Uint64(p[32:]), at: le.Uint32(p[48:]), e: dedupEntry{
		h: le.Uint64(p[8:]), clock: le.Uint64(p[16:]), num: le.Uint64(p[24:]),
		oldExp: le.Uint32(p[40:]), created: p[44] == 1,
	}}, true
}
