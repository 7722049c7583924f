package store

import (
	"os"
	"time"
)

// Stats describes a store.
type Stats struct {
	Path         string
	Buckets      uint64 // slot capacity (the bucket number)
	Records      uint64 // live keys, tombstones included
	Tombstones   uint64 // live keys that are tombstones (cluster deletes)
	UsedSlots    uint64 // slots holding a live record (== Records)
	DeletedSlots uint64 // slots marked removed
	LiveBytes    uint64 // aligned bytes of live records, tombstones included
	TombBytes    uint64 // aligned bytes of live tombstones
	DeadBytes    uint64 // log bytes not live: old versions, removal markers
	LogStart     uint64
	LogEnd       uint64
	Checkpoint   uint64
	FileSize     int64
	Alignment    int
	Flags        []string // "open", "fatal", "repaired"
	Modified     time.Time
	Created      time.Time
	GroupSyncs   uint64 // fdatasyncs run for SyncAlways writers (each covers a group)
}

// Load returns the fraction of slots in use (live or removed).
func (s *Stats) Load() float64 {
	if s.Buckets == 0 {
		return 0
	}
	return float64(s.UsedSlots+s.DeletedSlots) / float64(s.Buckets)
}

// Stats returns the current figures of an open store.
func (db *DB) Stats() Stats {
	g, err := db.acquire()
	if err != nil {
		return Stats{Path: db.path}
	}
	defer g.release()
	h := g.snap.Load()
	st := Stats{Path: db.path, Buckets: g.nbuckets * slotsPerBkt, Records: uint64(g.rnum.Load()),
		DeletedSlots: uint64(g.del.Load()), LiveBytes: uint64(g.live.Load()), LogStart: uint64(g.logStart),
		LogEnd: uint64(g.logEnd.Load()), Checkpoint: uint64(g.ckpt.Load()), Alignment: 1 << g.apow,
		Flags: flagNames(h.flags), Modified: time.Unix(0, h.modified), Created: time.Unix(0, h.created)}
	st.UsedSlots = st.Records
	st.Tombstones = uint64(g.tombs.Load())
	st.TombBytes = uint64(g.tombB.Load())
	st.DeadBytes = st.LogEnd - st.LogStart - st.LiveBytes
	st.GroupSyncs = db.groupSyncs.Load()
	if fi, err := g.f.Stat(); err == nil {
		st.FileSize = fi.Size()
	}
	return st
}

func flagNames(f uint16) []string {
	var s []string
	if f&flagOpen != 0 {
		s = append(s, "open")
	}
	if f&flagFatal != 0 {
		s = append(s, "fatal")
	}
	if f&flagRepaired != 0 {
		s = append(s, "repaired")
	}
	if f&flagRebuild != 0 {
		s = append(s, "rebuilding")
	}
	return s
}

// Inform reads the figures of a store file without opening it for
// writing, so it works while a server holds the file. Counters are those
// of the last checkpoint; slot counts come from the slot table on disk.
func Inform(path string) (Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, err
	}
	defer f.Close()
	h, err := readHeader(f)
	if err != nil {
		return Stats{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Path: path, Buckets: h.bnum, Records: h.rnum, DeletedSlots: h.delSlots, LiveBytes: h.liveBytes,
		LogStart: h.logStart, LogEnd: h.logEnd, Checkpoint: h.checkpoint, FileSize: fi.Size(),
		Alignment: 1 << h.apow, Flags: flagNames(h.flags), Modified: time.Unix(0, h.modified),
		Created: time.Unix(0, h.created)}
	st.UsedSlots = st.Records
	st.Tombstones = h.tombs    // 0 in a header from before the count
	st.TombBytes = h.tombBytes // likewise
	st.DeadBytes = st.LogEnd - st.LogStart - st.LiveBytes
	return st, nil
}
