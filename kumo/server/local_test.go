package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"kumofs/kumo/wire"
	"kumofs/proto/rpc"
	"kumofs/ring"
	"kumofs/store"
)

// readLocal runs ReadLocal and returns a copy of what f got (ok false for
// nil), failing the test if f was not called exactly once.
func readLocal(t *testing.T, s *Server, key string) (v wire.Value, ok bool, err error) {
	t.Helper()
	calls := 0
	err = s.ReadLocal(dbkey(key), func(got *wire.Value) {
		calls++
		if got != nil {
			v, ok = *got, true
			v.Data = bytes.Clone(got.Data)
		}
	})
	if want := 1; err != nil {
		want = 0
		if calls != want {
			t.Fatalf("ReadLocal(%s) failed (%v) and called f %d times", key, err, calls)
		}
	} else if calls != want {
		t.Fatalf("ReadLocal(%s) called f %d times", key, calls)
	}
	return v, ok, err
}

// Ensure that ReadLocal answers every key exactly as SrvGet does (values,
// misses, tombstones, expired and flushed values), counts the read as
// one, and refuses keys the server does not serve, without calling f.
func TestReadLocal(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	storeKey(t, cl, wire.OpSet, "k1", "one")
	storeKey(t, cl, wire.OpSet, "k2", "two")
	ct := s.clk.Now()
	if _, err := s.db.Update(&store.Record{Key: dbkey("gone"), Clock: ct, Tombstone: true}, newer(ct)); err != nil {
		t.Fatal(err)
	}
	ct = s.clk.Now()
	if _, err := s.db.Update(&store.Record{Key: dbkey("old"), Value: []byte("x"), Clock: ct, Exptime: 1}, newer(ct)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "k2", "nokey", "gone", "old"} {
		want, wantOK := getKey(t, cl, wire.SrvGet, k)
		before := s.cmdGet.Load()
		got, ok, err := readLocal(t, s, k)
		if err != nil {
			t.Fatalf("ReadLocal(%s): %v", k, err)
		}
		if ok != wantOK || got.Clock != want.Clock || got.Flags != want.Flags || got.Exptime != want.Exptime || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("ReadLocal(%s) = %+v, %v; SrvGet gives %+v, %v", k, got, ok, want, wantOK)
		}
		if d := s.cmdGet.Load() - before; d != 1 {
			t.Errorf("ReadLocal(%s) counted %d gets, want 1", k, d)
		}
	}
	if v, ok, _ := readLocal(t, s, "k1"); !ok || string(v.Data) != "one" {
		t.Fatalf("k1 = %q, %v", v.Data, ok)
	}

	// After a flush_all every older value is gone, on both paths.
	if err := s.flushAll(0); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := readLocal(t, s, "k1"); ok || err != nil {
		t.Errorf("k1 after flush_all: found %v, err %v", ok, err)
	}

	// A key this server does not serve is refused as SrvGet refuses it.
	other, _ := ring.ParseAddr("127.0.0.1:19898", 19800)
	s.rhs.Store(ring.New([]ring.Node{{Addr: other, Active: true}}, s.clk.Now()))
	var re *rpc.Error
	before := s.cmdGet.Load()
	if _, _, err := readLocal(t, s, "k2"); !errors.As(err, &re) || re.Msg != wire.MsgObsolete {
		t.Errorf("ReadLocal of a key owned elsewhere: %v, want %q", err, wire.MsgObsolete)
	}
	if d := s.cmdGet.Load() - before; d != 0 {
		t.Errorf("a refused ReadLocal counted %d gets; the RPC that follows counts it", d)
	}
	s.rhs.Store(&ring.HashSpace{})
	if _, _, err := readLocal(t, s, "k2"); !errors.As(err, &re) || re.Msg != wire.MsgNotReady {
		t.Errorf("ReadLocal without a hash space: %v, want %q", err, wire.MsgNotReady)
	}
}

// Ensure that WriteLocal stores a set as SrvStore does (value, flags,
// exptime, a new clock that done reports and that replaces an older
// version), counts it, and refuses, without calling done, a key this
// server does not coordinate and a store that syncs every write.
func TestWriteLocal(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	write := func(key, val string, flags, exptime uint32) (uint64, error, error) {
		t.Helper()
		calls := 0
		var ct uint64
		var derr error
		v := wire.Value{Clock: 99, Flags: flags, Exptime: exptime, Data: []byte(val)}
		err := s.WriteLocal(dbkey(key), &v, nil, func(c uint64, e error) {
			calls++
			ct, derr = c, e
		})
		if want := map[bool]int{true: 0, false: 1}[err != nil]; calls != want {
			t.Fatalf("WriteLocal(%s) returned %v and called done %d times", key, err, calls)
		}
		return ct, derr, err
	}
	storeKey(t, cl, wire.OpSet, "k", "old")
	old, _ := getKey(t, cl, wire.SrvGet, "k")
	before := s.cmdSet.Load()
	ct, derr, err := write("k", "new", 5, 1<<31)
	if err != nil || derr != nil {
		t.Fatalf("WriteLocal: %v, done: %v", err, derr)
	}
	got, ok := getKey(t, cl, wire.SrvGet, "k")
	if !ok || string(got.Data) != "new" || got.Flags != 5 || got.Exptime != 1<<31 || got.Clock != ct || ct <= old.Clock {
		t.Errorf("after WriteLocal: %+v, %v (done's clock %d, the old one %d)", got, ok, ct, old.Clock)
	}
	if d := s.cmdSet.Load() - before; d != 1 {
		t.Errorf("WriteLocal counted %d sets, want 1", d)
	}

	saved := s.cfg.Store.Sync
	s.cfg.Store.Sync = store.SyncAlways
	if _, _, err := write("k", "synced", 0, 0); !errors.Is(err, ErrNotLocal) {
		t.Errorf("WriteLocal with SyncAlways: %v, want ErrNotLocal", err)
	}
	s.cfg.Store.Sync = saved

	other, _ := ring.ParseAddr("127.0.0.1:19898", 19800)
	s.whs.Store(ring.New([]ring.Node{{Addr: other, Active: true}}, s.clk.Now()))
	var re *rpc.Error
	if _, _, err := write("k", "elsewhere", 0, 0); !errors.As(err, &re) || re.Msg != wire.MsgObsolete {
		t.Errorf("WriteLocal of a key coordinated elsewhere: %v, want %q", err, wire.MsgObsolete)
	}
	if got, _ := getKey(t, cl, wire.SrvGet, "k"); string(got.Data) != "new" {
		t.Errorf("a refused WriteLocal stored %q", got.Data)
	}
}

// Ensure that a closed server refuses local reads and writes instead of
// touching a closed store.
func TestLocalAfterClose(t *testing.T) {
	s, _ := startAlone(t, filepath.Join(t.TempDir(), "db"))
	s.Close()
	if err := s.ReadLocal(dbkey("k"), func(*wire.Value) { t.Error("f called after Close") }); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadLocal after Close: %v", err)
	}
	v := wire.Value{Data: []byte("x")}
	if err := s.WriteLocal(dbkey("k"), &v, nil, func(uint64, error) { t.Error("done called after Close") }); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteLocal after Close: %v", err)
	}
}

// Ensure that a store failure reaches peers (and so memcached clients)
// without the server's file paths: the store's sentinel, a fixed text for
// an I/O error, and "no space" (which also marks the disk full).
func TestStoreErrorHidesPaths(t *testing.T) {
	s, _ := startAlone(t, filepath.Join(t.TempDir(), "db"))
	pathErr := &os.PathError{Op: "write", Path: "/secret/place/s1.kch", Err: syscall.EIO}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("store: append: %w", pathErr), "store: I/O error (see the server's log)"},
		{fmt.Errorf("store: append: %w", &os.PathError{Op: "write", Path: "/secret/x", Err: syscall.ENOSPC}), "store: no space left on device"},
		{fmt.Errorf("reading /secret/x: %w", store.ErrCorrupt), store.ErrCorrupt.Error()},
		{store.ErrFull, store.ErrFull.Error()},
	} {
		var re *rpc.Error
		if err := s.storeError(tt.err); !errors.As(err, &re) || re.Msg != tt.want {
			t.Errorf("storeError(%v) = %v, want %q", tt.err, err, tt.want)
		}
		// Checked at once: the maintenance loop clears the state when
		// it finds the (real) disk has room, which on a loaded machine
		// it did once between the two lines; a few tries tell a race
		// from a flag never set.
		if errors.Is(tt.err, syscall.ENOSPC) {
			marked := s.diskFull.Load()
			for i := 0; i < 10 && !marked; i++ {
				s.storeError(tt.err)
				marked = s.diskFull.Load()
			}
			if !marked {
				t.Error("ENOSPC did not mark the disk full")
			}
		}
	}
}

// Ensure that DeleteLocal deletes as SrvRemove does: found and a tombstone
// for a live key (counted as a delete), not found for a missing or
// already deleted one, and a refusal without done for a key coordinated
// elsewhere.
func TestDeleteLocal(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	del := func(key string) (found bool, derr, err error) {
		t.Helper()
		calls := 0
		err = s.DeleteLocal(dbkey(key), nil, func(f bool, e error) { calls++; found, derr = f, e })
		if want := map[bool]int{true: 0, false: 1}[err != nil]; calls != want {
			t.Fatalf("DeleteLocal(%s) returned %v and called done %d times", key, err, calls)
		}
		return found, derr, err
	}
	storeKey(t, cl, wire.OpSet, "k", "v")
	before := s.cmdDelete.Load()
	if found, derr, err := del("k"); !found || derr != nil || err != nil {
		t.Fatalf("delete of a live key: found %v, %v, %v", found, derr, err)
	}
	if d := s.cmdDelete.Load() - before; d != 1 {
		t.Errorf("DeleteLocal counted %d deletes, want 1", d)
	}
	if _, ok := getKey(t, cl, wire.SrvGet, "k"); ok {
		t.Error("k still readable after DeleteLocal")
	}
	if v, ok := getKey(t, cl, wire.SrvGetRaw, "k"); !ok || !v.Tombstone {
		t.Errorf("k after DeleteLocal: %+v, %v; want a tombstone", v, ok)
	}
	for _, k := range []string{"k", "never"} {
		if found, derr, err := del(k); found || derr != nil || err != nil {
			t.Errorf("delete of %s: found %v, %v, %v; want not found", k, found, derr, err)
		}
	}
	other, _ := ring.ParseAddr("127.0.0.1:19898", 19800)
	s.whs.Store(ring.New([]ring.Node{{Addr: other, Active: true}}, s.clk.Now()))
	var re *rpc.Error
	if _, _, err := del("k"); !errors.As(err, &re) || re.Msg != wire.MsgObsolete {
		t.Errorf("DeleteLocal of a key coordinated elsewhere: %v, want %q", err, wire.MsgObsolete)
	}
}

// Ensure that a read in place allocates nothing once warm: the value
// handed to f and the read buffer come from a pool (under the race
// detector, which drops a quarter of what pools are given back, less than
// one allocation per read; a Value made per read is one).
func TestReadLocalAllocs(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db"))
	storeKey(t, cl, wire.OpSet, "k1", string(bytes.Repeat([]byte("v"), 1000)))
	key := dbkey("k1")
	var n int
	f := func(v *wire.Value) { n += len(v.Data) }
	read := func() {
		if err := s.ReadLocal(key, f); err != nil {
			t.Fatal(err)
		}
	}
	read()
	allocs := testing.AllocsPerRun(200, read)
	if n != 202*1000 { // AllocsPerRun runs it once more to warm up
		t.Fatalf("f saw %d bytes, want %d", n, 202*1000)
	}
	if limit := 0.0; allocs > limit && !(raceEnabled && allocs < 1) {
		t.Fatalf("ReadLocal allocates %.2f times per read", allocs)
	}
}
