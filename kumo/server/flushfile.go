package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"slices"

	"kumofs/internal/durable"
)

// The flush file, <StorePath>.flush, keeps what flush_all decided across a
// crash or a restart: the flush point, the flush point whose sweep is on
// stable storage, and the delayed flushes not yet due. It is small and
// replaced as a whole (writeFlushFile). Layout, little-endian:
//
//	magic    8 bytes  "kumoflsh"
//	version  uint32   1
//	at       uint64   the flush point (a ClockTime)
//	swept    uint64   the flush point whose tombstones are durable (<= at)
//	n        uint32   the number of scheduled flushes (<= maxScheduled)
//	sched    n uint64 their unix seconds (< 2^32), strictly ascending
//	crc      uint32   CRC-32C (Castagnoli) of every byte before it
const (
	flushMagic       = "kumoflsh"
	flushVersion     = 1
	flushHeaderLen   = len(flushMagic) + 4 + 8 + 8 + 4
	maxScheduled     = 1024 // the most a flush file lists (a flush_all replaces the pending one; older versions kept several)
	maxFlushFileSize = flushHeaderLen + 8*maxScheduled + 4
)

// Errors from reading a flush file.
var (
	// ErrFlushFileCorrupt means the flush file fails its checks (length,
	// magic, checksum, ordering). New refuses to start on it.
	ErrFlushFileCorrupt = errors.New("server: flush file is corrupt")
	// ErrFlushFileVersion means the flush file was written in a format
	// version this kumo-server does not know.
	ErrFlushFileVersion = errors.New("server: flush file version is not supported")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// flushRecord is the content of a flush file.
type flushRecord struct {
	At    uint64   // the flush point: values stamped below it are gone
	Swept uint64   // the flush point up to which the sweep's tombstones are durable
	Sched []uint64 // unix seconds of pending delayed flushes, strictly ascending
}

// equal reports whether r and o hold the same state.
func (r flushRecord) equal(o *flushRecord) bool {
	return r.At == o.At && r.Swept == o.Swept && slices.Equal(r.Sched, o.Sched)
}

// clone returns a copy of r that shares no memory with it.
func (r *flushRecord) clone() flushRecord {
	c := *r
	c.Sched = slices.Clone(r.Sched)
	return c
}

// schedule adds a delayed flush at unix second at and reports whether it
// was added: not when it is there already or moot (its flush point is not
// above At).
func (r *flushRecord) schedule(at uint64) bool {
	if at<<32 <= r.At {
		return false
	}
	i, found := slices.BinarySearch(r.Sched, at)
	if found {
		return false
	}
	r.Sched = slices.Insert(r.Sched, i, at)
	return true
}

// fire puts the delayed flush at unix second at in force, if it is
// scheduled: the flush point rises to at<<32 and at leaves the schedule.
// It reports whether at was scheduled.
func (r *flushRecord) fire(at uint64) bool {
	i, found := slices.BinarySearch(r.Sched, at)
	if !found {
		return false
	}
	r.At = max(r.At, at<<32)
	r.Sched = slices.Delete(r.Sched, i, i+1)
	return true
}

// prune drops the scheduled flushes that are moot: a flush point not above
// At changes nothing when it fires.
func (r *flushRecord) prune() {
	r.Sched = slices.DeleteFunc(r.Sched, func(t uint64) bool { return t<<32 <= r.At })
	if len(r.Sched) == 0 {
		r.Sched = nil
	}
}

// appendFlushRecord appends the encoding of r to b.
func appendFlushRecord(b []byte, r *flushRecord) []byte {
	start := len(b)
	b = append(b, flushMagic...)
	b = binary.LittleEndian.AppendUint32(b, flushVersion)
	b = binary.LittleEndian.AppendUint64(b, r.At)
	b = binary.LittleEndian.AppendUint64(b, r.Swept)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Sched)))
	for _, t := range r.Sched {
		b = binary.LittleEndian.AppendUint64(b, t)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// parseFlushRecord decodes a whole flush file. Errors wrap
// ErrFlushFileCorrupt or ErrFlushFileVersion. The record shares no memory
// with data.
func parseFlushRecord(data []byte) (flushRecord, error) {
	var r flushRecord
	if len(data) < flushHeaderLen+4 {
		return r, fmt.Errorf("%w: %d bytes, too short", ErrFlushFileCorrupt, len(data))
	}
	if !bytes.Equal(data[:len(flushMagic)], []byte(flushMagic)) {
		return r, fmt.Errorf("%w: not a flush file (bad magic)", ErrFlushFileCorrupt)
	}
	p := data[len(flushMagic):]
	// The version comes before the checksum: another version may lay out
	// (and checksum) the rest differently.
	if v := binary.LittleEndian.Uint32(p); v != flushVersion {
		return r, fmt.Errorf("%w: version %d, this kumo-server reads version %d", ErrFlushFileVersion, v, flushVersion)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return r, fmt.Errorf("%w: checksum mismatch", ErrFlushFileCorrupt)
	}
	p = p[4:]
	r.At = binary.LittleEndian.Uint64(p)
	r.Swept = binary.LittleEndian.Uint64(p[8:])
	n := binary.LittleEndian.Uint32(p[16:])
	p = body[flushHeaderLen:]
	if n > maxScheduled || uint64(len(p)) != uint64(n)*8 {
		return flushRecord{}, fmt.Errorf("%w: %d scheduled flushes in %d bytes", ErrFlushFileCorrupt, n, len(p))
	}
	if r.Swept > r.At {
		return flushRecord{}, fmt.Errorf("%w: swept point %#x above the flush point %#x", ErrFlushFileCorrupt, r.Swept, r.At)
	}
	if n > 0 {
		r.Sched = make([]uint64, n)
	}
	for i := range r.Sched {
		r.Sched[i] = binary.LittleEndian.Uint64(p[8*i:])
		if r.Sched[i] > math.MaxUint32 {
			return flushRecord{}, fmt.Errorf("%w: scheduled flush at %d is not a unix second", ErrFlushFileCorrupt, r.Sched[i])
		}
		if i > 0 && r.Sched[i] <= r.Sched[i-1] {
			return flushRecord{}, fmt.Errorf("%w: scheduled flushes out of order", ErrFlushFileCorrupt)
		}
	}
	return r, nil
}

// readFlushRecord reads and decodes a whole flush file from rd.
func readFlushRecord(rd io.Reader) (flushRecord, error) {
	data, err := io.ReadAll(io.LimitReader(rd, int64(maxFlushFileSize)+1))
	if err != nil {
		return flushRecord{}, err
	}
	if len(data) > maxFlushFileSize {
		return flushRecord{}, fmt.Errorf("%w: longer than %d bytes", ErrFlushFileCorrupt, maxFlushFileSize)
	}
	return parseFlushRecord(data)
}

// loadFlushFile reads the flush file at path. A missing file is the zero
// record (no flush point, nothing scheduled).
func loadFlushFile(path string) (flushRecord, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return flushRecord{}, nil
	}
	if err != nil {
		return flushRecord{}, fmt.Errorf("server: reading the flush file: %w", err)
	}
	defer f.Close()
	r, err := readFlushRecord(f)
	if err != nil {
		if errors.Is(err, ErrFlushFileCorrupt) || errors.Is(err, ErrFlushFileVersion) {
			return flushRecord{}, fmt.Errorf("%w (%s)", err, path)
		}
		return flushRecord{}, fmt.Errorf("server: reading the flush file: %w", err)
	}
	return r, nil
}

// writeFlushFile replaces the flush file at path with r atomically and
// durably: it writes path.tmp, fsyncs it, renames it over path and fsyncs
// the folder. A crash leaves either the old file or the new one.
func writeFlushFile(path string, r *flushRecord) error {
	if err := durable.WriteFile(path, appendFlushRecord(nil, r), 0o644); err != nil {
		return fmt.Errorf("server: writing the flush file: %w", err)
	}
	return nil
}
