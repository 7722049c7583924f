package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/store"
)

// Ensure that a backup taken after flush_all's OK but before its sweep ran
// holds the flushed values as the sweep's tombstones (a restore must not
// bring them back), and what was written after the flush as it is.
func TestBackupHonoursFlush(t *testing.T) {
	testHookSweep = func() bool { return false } // the sweep never runs
	t.Cleanup(func() { testHookSweep = nil })
	path := filepath.Join(t.TempDir(), "db.kch")
	s, cl := startAlone(t, path)
	for _, k := range []string{"a", "b", "c"} {
		if st := storeKey(t, cl, wire.OpSet, k, "old-"+k); st != wire.StatusOK {
			t.Fatalf("set %s: status %d", k, st)
		}
	}
	flushAt(t, cl, 0)
	fp := s.flushing.at.Load()
	if st := storeKey(t, cl, wire.OpSet, "b", "new-b"); st != wire.StatusOK {
		t.Fatalf("set after the flush: status %d", st)
	}
	if rec := rawRecord(t, s, "a"); rec.Tombstone {
		t.Fatal("the sweep ran; the test needs it held back")
	}
	res := call(t, cl, wire.SrvCreateBackup, func(b []byte) []byte {
		return msgpack.AppendRaw(msgpack.AppendArrayHeader(b, 1), []byte("t1"))
	})
	if ok, _, err := msgpack.ReadBool(res); err != nil || !ok {
		t.Fatalf("backup reply %x", res)
	}
	dst := path + "-t1"
	waitUntil(t, "the backup file", func() bool { _, err := os.Stat(dst); return err == nil })
	bk, err := store.Open(dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bk.Close()
	for _, k := range []string{"a", "c"} {
		rec, _, err := bk.Get(dbkey(k), nil)
		if err != nil || !rec.Tombstone || rec.Clock != fp {
			t.Errorf("%s in the backup: %v, tombstone %v, clock %#x; want the tombstone at the flush point %#x", k, err, rec.Tombstone, rec.Clock, fp)
		}
	}
	rec, _, err := bk.Get(dbkey("b"), nil)
	if err != nil || rec.Tombstone || rec.Clock <= fp || string(rec.Value) != "new-b" {
		t.Errorf("b in the backup: %v, tombstone %v, clock %#x, value %q; want new-b written after the flush", err, rec.Tombstone, rec.Clock, rec.Value)
	}
}

// Ensure that a backup suffix naming another folder is refused with an
// error the caller sees, instead of a nil answer and a failed copy logged.
func TestBackupSuffixRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.kch")
	_, cl := startAlone(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cl.Call(ctx, wire.SrvCreateBackup, func(b []byte) []byte {
		return msgpack.AppendRaw(msgpack.AppendArrayHeader(b, 1), []byte("../x"))
	})
	var re *rpc.Error
	if !errors.As(err, &re) || re.Msg != wire.ErrBackupSuffix.Error() {
		t.Fatalf("backup ../x: %v, want %q", err, wire.ErrBackupSuffix)
	}
	if _, err := os.Stat(path + "-../x"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a backup was written: %v", err)
	}
}
