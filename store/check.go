package store

import (
	"errors"
	"io"
	"os"
)

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Records  int     // valid records in the log
	Live     int     // live slots checked
	Bad      []int64 // offsets where a record failed its checks
	TailCut  int64   // bytes after the last valid record (a torn tail)
	BadSlots int     // slots not pointing at a valid record of their key
}

// Verify checks every record's CRC and every slot of the store at path,
// changing nothing. The file must not be open elsewhere (ErrLocked). It
// returns ErrCorrupt (with the report) if anything is wrong.
func Verify(path string) (VerifyReport, error) {
	var rep VerifyReport
	f, err := os.Open(path)
	if err != nil {
		return rep, err
	}
	defer f.Close()
	if err := flock(f.Fd()); err != nil {
		return rep, err
	}
	h, err := readHeader(f)
	if err != nil {
		return rep, err
	}
	fi, err := f.Stat()
	if err != nil {
		return rep, err
	}
	size := fi.Size()
	g := &gen{f: f, apow: h.apow, logStart: int64(h.logStart), nbuckets: h.bnum / slotsPerBkt}
	var scratch []byte
	var rec Record
	off := g.logStart
	for off < size {
		p, klen, vlen, _, err := g.record(off, size, &scratch)
		if err == nil {
			_, _, err = decodeRecord(p, &rec)
		}
		if err != nil {
			if off >= int64(h.checkpoint) && allZero(f, off, size) {
				break // preallocated space
			}
			next, ok := resync(g, off+1<<g.apow, size, &scratch)
			if !ok && off >= int64(h.checkpoint) {
				rep.TailCut = size - off // torn tail, cut at the next open
				break
			}
			rep.Bad = append(rep.Bad, off)
			if !ok {
				break
			}
			off = next
			continue
		}
		rep.Records++
		off += recSize(klen, vlen, g.apow)
	}
	// Every live slot must point at a valid record of its key's tag. The
	// table is read in chunks, so memory stays bounded.
	const chunk = 8192
	buf := make([]byte, 8*chunk)
	for i := uint64(0); i < h.bnum; i += chunk {
		n := min(chunk, h.bnum-i)
		if _, err := f.ReadAt(buf[:8*n], slotsOffset+8*int64(i)); err != nil {
			return rep, err
		}
		for j := uint64(0); j < n; j++ {
			s := leUint64(buf[8*j:])
			if s == 0 || slotHint(s) == 0 {
				continue
			}
			rep.Live++
			p, _, _, _, err := g.record(slotOff(s, g.apow), size, &scratch)
			if err == nil {
				_, _, err = decodeRecord(p, &rec)
			}
			if err != nil || hashKey(rec.Key)&0xffff != slotTag(s) {
				rep.BadSlots++
			}
		}
	}
	if len(rep.Bad) > 0 || rep.BadSlots > 0 {
		return rep, ErrCorrupt
	}
	return rep, nil
}

func leUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func allZero(f *os.File, off, size int64) bool {
	buf := make([]byte, 64<<10)
	for off < size {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for _, c := range buf[:n] {
			if c != 0 {
				return false
			}
		}
		if err != nil {
			return errors.Is(err, io.EOF)
		}
		off += int64(n)
	}
	return true
}

// resync finds the next aligned offset at or after off holding a valid
// record.
func resync(g *gen, off, size int64, scratch *[]byte) (int64, bool) {
	var rec Record
	for ; off+recHdrSize <= size; off += 1 << g.apow {
		p, _, _, _, err := g.record(off, size, scratch)
		if err == nil {
			if _, _, err = decodeRecord(p, &rec); err == nil {
				return off, true
			}
		}
	}
	return size, false
}

// RepairReport is the result of Repair.
type RepairReport struct {
	Recovered int     // live records in the repaired file
	Scanned   int     // valid records found in the old file
	Skipped   []int64 // offsets of damaged regions skipped
}

// Repair rebuilds the store at path from every undamaged record in its
// log, skipping damaged ones by resynchronizing on the next aligned
// offset holding a valid record, and atomically replaces the file. The
// newest record of each key among the undamaged ones wins. The file must
// not be open elsewhere.
func Repair(path string) (RepairReport, error) {
	var rep RepairReport
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return rep, err
	}
	defer f.Close()
	if err := flock(f.Fd()); err != nil {
		return rep, err
	}
	h, err := readHeader(f)
	if err != nil {
		h, err = guessHeader(f)
		if err != nil {
			return rep, err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return rep, err
	}
	size := fi.Size()
	old := &gen{f: f, apow: h.apow, logStart: int64(h.logStart)}
	tmp := path + ".repair"
	os.Remove(tmp)
	ng, err := openGen(tmp, h.bnum, true)
	if err != nil {
		return rep, err
	}
	ok := false
	defer func() {
		if !ok {
			ng.release()
			<-ng.done
			os.Remove(tmp)
		}
	}()
	var scratch, nscratch, wbuf []byte
	var rec Record
	off := old.logStart
	for off < size {
		p, klen, vlen, rf, err := old.record(off, size, &scratch)
		if err == nil {
			_, _, err = decodeRecord(p, &rec)
		}
		if err != nil {
			next, found := resync(old, off+1<<old.apow, size, &scratch)
			if !allZero(f, off, min(next, size)) {
				rep.Skipped = append(rep.Skipped, off)
			}
			if !found {
				break
			}
			off = next
			continue
		}
		rep.Scanned++
		if err := ng.apply(&rec, rf, &wbuf, &nscratch); err != nil {
			return rep, err
		}
		off += recSize(klen, vlen, old.apow)
	}
	rep.Recovered = int(ng.rnum.Load())
	if err := ng.checkpointPrivate(flagRepaired); err != nil {
		return rep, err
	}
	ok = true
	ng.release()
	<-ng.done
	if err := os.Rename(tmp, path); err != nil {
		return rep, err
	}
	return rep, syncDir(path)
}

// guessHeader reconstructs the layout of a file whose both header copies
// are damaged, from the first record found after a plausible log start.
func guessHeader(f *os.File) (header, error) {
	fi, err := f.Stat()
	if err != nil {
		return header{}, err
	}
	g := &gen{f: f, apow: defaultApow}
	var scratch []byte
	for start := int64(logAlign); start < fi.Size(); start += logAlign {
		p, _, _, _, err := g.record(start, fi.Size(), &scratch)
		if err != nil {
			continue
		}
		var rec Record
		if _, _, err := decodeRecord(p, &rec); err != nil {
			continue
		}
		bnum := uint64(start-slotsOffset) / 8
		bnum &^= slotsPerBkt - 1
		return header{apow: defaultApow, bnum: bnum, logStart: uint64(start), checkpoint: uint64(start)}, nil
	}
	return header{}, ErrNoRecords
}
