package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
)

// The request-id file, <StorePath>.ids, keeps the dedup table across a
// restart. It has a fixed size and is written in place through a shared
// mapping, one 64-byte slot per remembered write (the table's ring), so a
// write costs no system call; a process killed with SIGKILL leaves every
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
//	header    64 bytes: magic "kumoreqi", version uint32 1, slots uint32,
//	          pending uint32, zero
//	slot i    64 bytes at 64 + 64·i:
//	          0 id uint64 (0: free)   8 key hash      16 clock     24 num
//	          32 seq uint64           40 old exptime uint32        44 created (0 or 1)
//	          45..59 zero             60 CRC-32C (Castagnoli) of bytes [0, 60)
//	pending j 384 bytes after the slots, at 64 + 64·slots + 384·j:
//	          0 a slot as above (seq 0)    64 key length uint16 (<= maxPendingKey)
//	          66 the DBKey, zero-padded    380 CRC-32C of bytes [64, 380)
//
// A file of another size, version or slot count is started afresh: it
// holds only recent ids, whose loss means what a restart meant before the
// file existed.
const (
	idsMagic       = "kumoreqi"
	idsVersion     = 1
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
// request-id file at path for slots slots and pending pending slots. fresh
// reports that it holds no earlier ids. A new file is written out in
// full, so that a full disk fails here and not later as a fault in the
// mapping.
func openDedupFile(path string, slots, pending int) (d *dedupFile, fresh bool, err error) {
	size := idsHeader + slots*idsSlotSize + pending*idsPendingSize
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", errIDsFile, err)
	}
	want := idsFileHeader(slots, pending)
	var hdr [idsHeader]byte
	fi, err := f.Stat()
	if err == nil && fi.Size() == int64(size) {
		_, err = f.ReadAt(hdr[:], 0)
	}
	if err == nil && (fi.Size() != int64(size) || hdr != want) {
		fresh = true
		if err = f.Truncate(0); err == nil {
			buf := make([]byte, size)
			copy(buf, want[:])
			_, err = f.WriteAt(buf, 0)
		}
	}
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
	off := idsHeader + i*idsSlotSize
	return d.m[off : off+idsSlotSize : off+idsSlotSize]
}

// read returns slot i, or false if it is free or fails its checks.
func (d *dedupFile) read(i int) (dedupSlot, bool) { return decodeIDSlot(d.slot(i)) }

// write stores sl in slot i.
func (d *dedupFile) write(i int, sl *dedupSlot) { encodeIDSlot(d.slot(i), sl) }

// pendingSlot returns the bytes of pending slot j.
func (d *dedupFile) pendingSlot(j int) []byte {
	off := idsHeader + d.slots*idsSlotSize + j*idsPendingSize
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
	if sl, ok = decodeIDSlot(p); !ok || sl.seq != 0 {
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
	clear(p[45:60])
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
	for _, c := range p[45:60] {
		if c != 0 {
			return dedupSlot{}, false
		}
	}
	return dedupSlot{id: le.Uint64(p), seq: le.Uint64(p[32:]), e: dedupEntry{
		h: le.Uint64(p[8:]), clock: le.Uint64(p[16:]), num: le.Uint64(p[24:]),
		oldExp: le.Uint32(p[40:]), created: p[44] == 1,
	}}, true
}
