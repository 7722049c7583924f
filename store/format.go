package store

import (
	"encoding/binary"
	"hash/crc32"
	"math/bits"
)

// On-disk layout; FORMAT.md is the prose version of these constants.
const (
	headerSize   = 256    // one header copy
	headerCopyB  = 0x800  // file offset of the second header copy
	slotsOffset  = 0x1000 // file offset of the slot table
	slotsPerBkt  = 8      // slots per 64-byte bucket
	logAlign     = 64 << 10
	formatVer    = 1
	defaultApow  = 4 // records start at multiples of 16 bytes
	recHdrSize   = 32
	recMagic     = 0xC7
	maxKeyLen    = 65535
	maxValueLen  = 1 << 30
	hintUnit     = 256
	offBits      = 40
	offMask      = 1<<offBits - 1
	hashAlgFNV1a = 1
)

var fileMagic = [8]byte{'K', 'u', 'm', 'o', 'H', 'D', 'B', '\n'}

// Header flags.
const (
	flagOpen     = 1 << 0 // a writer is attached, or crashed while attached
	flagFatal    = 1 << 1 // an I/O error was seen
	flagRepaired = 1 << 2 // the file was rebuilt by repair
	flagRebuild  = 1 << 3 // the slot table is being rebuilt: rebuild it again
	// flagTombs: bytes 96..103 count the live tombstones. Every header
	// written has it; one without it (written before the count existed)
	// has the count recomputed at open. Kept out of header.flags.
	flagTombs = 1 << 4
	// flagTombBytes: bytes 104..111 count the aligned bytes of the live
	// tombstones (counted in liveBytes too). Written with flagTombs; a
	// header without it has the counts recomputed at open.
	flagTombBytes = 1 << 5
)

// Record flags (byte 5 of a record).
const (
	recTombstone = 1 << 0 // a cluster delete: Record.Tombstone
	recRemove    = 1 << 1 // a physical removal marker written by Delete
	recFlagsMask = recTombstone | recRemove
)

// Lease bits (the u32 at offset 28 of a record); 0 in tombstones and
// removal markers.
const (
	leaseStale     = 1 << 0 // Record.Stale
	leaseTokenSent = 1 << 1 // Record.TokenSent
	leaseCas       = 1 << 2 // Record.Cas: the value starts with it, 8 bytes
	leaseMask      = leaseStale | leaseTokenSent | leaseCas
	casLen         = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is one decoded header copy.
type header struct {
	apow         uint8
	flags        uint16
	seq          uint64
	bnum         uint64 // slot capacity, a multiple of slotsPerBkt
	logStart     uint64
	checkpoint   uint64
	logEnd       uint64
	rnum         uint64
	liveBytes    uint64
	delSlots     uint64
	tombs        uint64 // live tombstones, if hasTombs
	hasTombs     bool   // the header counted them (flagTombs)
	tombBytes    uint64 // aligned bytes of the live tombstones, if hasTombBytes
	hasTombBytes bool   // the header counted them (flagTombBytes)
	created      int64  // unix nanoseconds
	modified     int64  // unix nanoseconds of the last checkpoint
}

// logStartFor returns the first log offset of a file with bnum slots.
func logStartFor(bnum uint64) uint64 {
	end := uint64(slotsOffset) + bnum*8
	return (end + logAlign - 1) &^ (logAlign - 1)
}

// appendHeader appends the 256-byte encoding of h to b.
func appendHeader(b []byte, h *header) []byte {
	var p [headerSize]byte
	copy(p[0:8], fileMagic[:])
	le := binary.LittleEndian
	le.PutUint16(p[8:], formatVer)
	p[10] = h.apow
	p[11] = 3 // log2(slotsPerBkt)
	p[12] = hashAlgFNV1a
	le.PutUint16(p[14:], h.flags|flagTombs|flagTombBytes)
	le.PutUint64(p[16:], h.seq)
	le.PutUint64(p[24:], h.bnum)
	le.PutUint64(p[32:], h.logStart)
	le.PutUint64(p[40:], h.checkpoint)
	le.PutUint64(p[48:], h.logEnd)
	le.PutUint64(p[56:], h.rnum)
	le.PutUint64(p[64:], h.liveBytes)
	le.PutUint64(p[72:], h.delSlots)
	le.PutUint64(p[80:], uint64(h.created))
	le.PutUint64(p[88:], uint64(h.modified))
	le.PutUint64(p[96:], h.tombs)
	le.PutUint64(p[104:], h.tombBytes)
	le.PutUint32(p[252:], crc32.Checksum(p[:252], castagnoli))
	return append(b, p[:]...)
}

// decodeHeader decodes one header copy. It returns ErrBadHeader for
// anything that is not a valid version-1 header.
func decodeHeader(p []byte) (header, error) {
	var h header
	if len(p) < headerSize || [8]byte(p[0:8]) != fileMagic {
		return h, ErrBadHeader
	}
	le := binary.LittleEndian
	if le.Uint32(p[252:]) != crc32.Checksum(p[:252], castagnoli) {
		return h, ErrBadHeader
	}
	if le.Uint16(p[8:]) != formatVer || p[11] != 3 || p[12] != hashAlgFNV1a || p[13] != 0 {
		return h, ErrBadHeader
	}
	flags := le.Uint16(p[14:])
	zero := 96
	if flags&flagTombs != 0 {
		zero = 104
		h.tombs, h.hasTombs = le.Uint64(p[96:]), true
		if flags&flagTombBytes != 0 {
			zero = 112
			h.tombBytes, h.hasTombBytes = le.Uint64(p[104:]), true
		}
	} else if flags&flagTombBytes != 0 {
		return h, ErrBadHeader
	}
	for _, c := range p[zero:252] {
		if c != 0 {
			return h, ErrBadHeader
		}
	}
	h.apow = p[10]
	h.flags = flags &^ (flagTombs | flagTombBytes)
	h.seq = le.Uint64(p[16:])
	h.bnum = le.Uint64(p[24:])
	h.logStart = le.Uint64(p[32:])
	h.checkpoint = le.Uint64(p[40:])
	h.logEnd = le.Uint64(p[48:])
	h.rnum = le.Uint64(p[56:])
	h.liveBytes = le.Uint64(p[64:])
	h.delSlots = le.Uint64(p[72:])
	h.created = int64(le.Uint64(p[80:]))
	h.modified = int64(le.Uint64(p[88:]))
	if h.apow < 3 || h.apow > 12 || h.bnum == 0 || h.bnum%slotsPerBkt != 0 || h.bnum > 1<<36 ||
		h.logStart != logStartFor(h.bnum) || h.checkpoint < h.logStart || h.logEnd < h.logStart ||
		h.checkpoint&(1<<h.apow-1) != 0 || h.checkpoint>>h.apow > offMask {
		return h, ErrBadHeader
	}
	return h, nil
}

// recSize returns the aligned on-disk size of a record.
func recSize(klen, vlen int, apow uint8) int64 {
	n := int64(recHdrSize + klen + vlen)
	a := int64(1) << apow
	return (n + a - 1) &^ (a - 1)
}

// hasCas reports whether rec, written with record flags rf, stores a
// CAS unique of its own.
func hasCas(rec *Record, rf byte) bool { return rf == 0 && rec.Cas != 0 }

// recValueLen returns the length of rec's value field on disk (record
// flags rf): the value, after its CAS unique if it has one of its own.
func recValueLen(rec *Record, rf byte) int {
	switch {
	case rf != 0:
		return 0
	case hasCas(rec, rf):
		return casLen + len(rec.Value)
	}
	return len(rec.Value)
}

// appendRecord appends the encoding of rec (with record flags rf, padded
// to 2^apow) to b.
//
//	0 u32 crc32c of bytes [4, 32+klen+vlen)   16 u64 clock
//	4 u8 0xC7   5 u8 rflags   6 u16 klen        24 u32 exptime
//	8 u32 vlen  12 u32 flags                    28 u32 lease bits
//	32 key, [u64 CAS unique if lease bit 4], value, zero padding
func appendRecord(b []byte, rec *Record, rf byte, apow uint8) []byte {
	start := len(b)
	vlen := recValueLen(rec, rf)
	size := int(recSize(len(rec.Key), vlen, apow))
	b = grow(b, size)
	p := b[start : start+size]
	le := binary.LittleEndian
	p[4] = recMagic
	p[5] = rf
	le.PutUint16(p[6:], uint16(len(rec.Key)))
	le.PutUint32(p[8:], uint32(vlen))
	le.PutUint32(p[12:], rec.Flags)
	le.PutUint64(p[16:], rec.Clock)
	le.PutUint32(p[24:], rec.Exptime)
	var lease uint32
	if rf == 0 {
		if rec.Stale {
			lease |= leaseStale
		}
		if rec.TokenSent {
			lease |= leaseTokenSent
		}
		if hasCas(rec, rf) {
			lease |= leaseCas
		}
	}
	le.PutUint32(p[28:], lease)
	n := copy(p[recHdrSize:], rec.Key)
	if lease&leaseCas != 0 {
		le.PutUint64(p[recHdrSize+n:], rec.Cas)
		n += casLen
	}
	if vlen > 0 {
		n += copy(p[recHdrSize+n:], rec.Value)
	}
	clear(p[recHdrSize+n:])
	le.PutUint32(p[0:], crc32.Checksum(p[4:recHdrSize+n], castagnoli))
	return b
}

// grow extends b by n bytes, reallocating if needed; the new bytes are
// unspecified.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// recHead decodes and checks a record's fixed header (not the CRC). It
// returns the unpadded length, or ErrCorrupt.
func recHead(p []byte) (klen, vlen int, rf byte, err error) {
	if len(p) < recHdrSize || p[4] != recMagic || p[5]&^recFlagsMask != 0 {
		return 0, 0, 0, ErrCorrupt
	}
	le := binary.LittleEndian
	klen = int(le.Uint16(p[6:]))
	vlen = int(le.Uint32(p[8:]))
	rf = p[5]
	lease := le.Uint32(p[28:])
	if klen == 0 || vlen > maxValueLen+casLen || (rf != 0 && (vlen != 0 || lease != 0)) || lease&^leaseMask != 0 ||
		rf == recTombstone|recRemove || (lease&leaseCas == 0 && vlen > maxValueLen) || (lease&leaseCas != 0 && vlen < casLen) {
		return 0, 0, 0, ErrCorrupt
	}
	return klen, vlen, rf, nil
}

// decodeRecord decodes the record at the start of p, checking its CRC.
// rec's Key and Value alias p. n is the unpadded length.
func decodeRecord(p []byte, rec *Record) (n int, rf byte, err error) {
	klen, vlen, rf, err := recHead(p)
	if err != nil {
		return 0, 0, err
	}
	n = recHdrSize + klen + vlen
	if len(p) < n {
		return 0, 0, ErrCorrupt
	}
	if binary.LittleEndian.Uint32(p[0:]) != crc32.Checksum(p[4:n], castagnoli) {
		return 0, 0, ErrCorrupt
	}
	fillRecord(p, klen, vlen, rf, rec)
	if rec.Cas == 0 && binary.LittleEndian.Uint32(p[28:])&leaseCas != 0 {
		return 0, 0, ErrCorrupt // never written: a CAS unique is not 0
	}
	return n, rf, nil
}

// fillRecord sets rec from a checked record p. rec.Value is the tail of
// the record's value field (after its CAS unique, if any).
func fillRecord(p []byte, klen, vlen int, rf byte, rec *Record) {
	le := binary.LittleEndian
	rec.Key = p[recHdrSize : recHdrSize+klen : recHdrSize+klen]
	v := recHdrSize + klen
	rec.Cas = 0
	if le.Uint32(p[28:])&leaseCas != 0 {
		rec.Cas = le.Uint64(p[v:])
		v += casLen
	}
	rec.Value = p[v : recHdrSize+klen+vlen : recHdrSize+klen+vlen]
	rec.Flags = le.Uint32(p[12:])
	rec.Clock = le.Uint64(p[16:])
	rec.Exptime = le.Uint32(p[24:])
	rec.Tombstone = rf&recTombstone != 0
	lease := le.Uint32(p[28:])
	rec.Stale = lease&leaseStale != 0
	rec.TokenSent = lease&leaseTokenSent != 0
}

// hashKey is FNV-1a-64 with a final avalanche (murmur3 fmix64), so both
// the high bits (bucket) and low bits (tag) are well mixed. It is part
// of the file format: never change it without a new hashAlg value.
func hashKey(k []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range k {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Slot encoding: bits 0..39 offset>>apow, 40..47 size hint (0 = removed),
// 48..63 tag. A zero slot is empty.
func makeSlot(off int64, apow uint8, size int64, h uint64) uint64 {
	hint := (size + hintUnit - 1) / hintUnit
	if hint > 255 {
		hint = 255
	}
	return uint64(off)>>apow | uint64(hint)<<offBits | (h&0xffff)<<48
}

func removedSlot(off int64, apow uint8, h uint64) uint64 {
	return uint64(off)>>apow | (h&0xffff)<<48
}

func slotOff(s uint64, apow uint8) int64 { return int64(s&offMask) << apow }
func slotHint(s uint64) int              { return int(s >> offBits & 0xff) }
func slotTag(s uint64) uint64            { return s >> 48 }

// bucketOf maps a hash onto [0, nbuckets) using its high bits.
func bucketOf(h, nbuckets uint64) uint64 {
	hi, _ := bits.Mul64(h, nbuckets)
	return hi
}
