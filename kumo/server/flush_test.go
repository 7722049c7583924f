package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"kumofs/internal/logging"
	"kumofs/kumo/clock"
	"kumofs/kumo/wire"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
	"kumofs/store"
)

// Ensure that flush_all is answered before the sweep has touched the store
// (it is lazy), that from the reply on no get, GetRaw or read-modify-write
// sees a value stored before it, that writes after it are served, and that
// the sweep then leaves tombstones at the flush point that survive a
// restart.
func TestFlushAnswersBeforeTheSweep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.kch")
	s, cl := startAlone(t, path)
	const n = 500
	for i := 0; i < n; i++ {
		k := "k" + strconv.Itoa(i)
		rec := store.Record{Key: dbkey(k), Value: []byte("v"), Clock: s.clk.Now()}
		if _, err := s.db.Update(&rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	if st := storeKey(t, cl, wire.OpSet, "before", "1"); st != wire.StatusOK {
		t.Fatalf("set: status %d", st)
	}

	s.flushing.sweepMu.Lock() // the sweep cannot start until we let it
	release := sync.OnceFunc(s.flushing.sweepMu.Unlock)
	t.Cleanup(release) // before Close, which waits for the sweep
	flushAt(t, cl, 0)
	fp := s.flushing.at.Load()
	if fp == 0 {
		t.Fatal("no flush point after the reply")
	}
	if rec := rawRecord(t, s, "k7"); rec.Tombstone {
		t.Fatal("the sweep ran before the reply; the test proves nothing")
	}
	for _, k := range []string{"k0", "k7", "k499", "before"} {
		if v, ok := getKey(t, cl, wire.SrvGet, k); ok {
			t.Fatalf("get %s after flush_all: %q", k, v.Data)
		}
		if v, ok := getKey(t, cl, wire.SrvGetRaw, k); !ok || !v.Tombstone || v.Clock != fp {
			t.Fatalf("getraw %s after flush_all: %+v, %v; want a tombstone at %#x", k, v, ok, fp)
		}
	}
	// Read-modify-write commands decide as if the keys were gone.
	if st := storeKey(t, cl, wire.OpAdd, "k1", "new"); st != wire.StatusOK {
		t.Fatalf("add of a flushed key: status %d", st)
	}
	if st := storeKey(t, cl, wire.OpAppend, "k2", "x"); st != wire.StatusNotStored {
		t.Fatalf("append to a flushed key: status %d", st)
	}
	if st := storeKey(t, cl, wire.OpSet, "after", "2"); st != wire.StatusOK {
		t.Fatalf("set after flush: status %d", st)
	}
	for k, want := range map[string]string{"k1": "new", "after": "2"} {
		if v, ok := getKey(t, cl, wire.SrvGet, k); !ok || string(v.Data) != want {
			t.Fatalf("get %s = %q, %v; want %q", k, v.Data, ok, want)
		}
	}

	release()
	waitUntil(t, "sweep", func() bool { return sweptTo(s) == fp })
	for _, k := range []string{"k0", "k2", "k499", "before"} {
		if rec := rawRecord(t, s, k); !rec.Tombstone || rec.Clock != fp {
			t.Fatalf("%s after the sweep: tombstone %v clock %#x, want a tombstone at %#x", k, rec.Tombstone, rec.Clock, fp)
		}
	}
	if rec := rawRecord(t, s, "k1"); rec.Tombstone || string(rec.Value) != "new" {
		t.Fatal("the sweep removed a write made after the flush")
	}

	// A restart keeps the flush point, and knows the sweep is durable;
	// the tombstones remain.
	cl.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, cl2 := startAlone(t, path)
	if got := s2.flushing.at.Load(); got != fp {
		t.Fatalf("flush point after the restart %#x, want %#x", got, fp)
	}
	if got := sweptTo(s2); got != fp {
		t.Fatalf("swept point after the restart %#x, want %#x", got, fp)
	}
	for _, k := range []string{"k0", "k7", "before"} {
		if v, ok := getKey(t, cl2, wire.SrvGet, k); ok {
			t.Fatalf("get %s after restart: %q", k, v.Data)
		}
	}
	if v, ok := getKey(t, cl2, wire.SrvGet, "after"); !ok || string(v.Data) != "2" {
		t.Fatalf("get after = %q, %v", v.Data, ok)
	}
}

// flushFileOf returns what the flush file of the store at path holds.
func flushFileOf(t *testing.T, path string) flushRecord {
	t.Helper()
	rec, err := loadFlushFile(flushFilePath(path))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// holdSweeps makes every sweep from now on wait until release is called.
// Register t.Cleanup(release) after starting the server, so that it runs
// before Close, which waits for the sweeps.
func holdSweeps(t *testing.T) (release func()) {
	ch := make(chan struct{})
	testHookSweep = func() bool { <-ch; return true }
	t.Cleanup(func() { testHookSweep = nil }) // after Close
	return sync.OnceFunc(func() { close(ch) })
}

// putRecords stores key = "v" stamped ct for each key, straight into the
// store.
func putRecords(t *testing.T, s *Server, ct uint64, keys ...string) {
	t.Helper()
	for _, k := range keys {
		rec := store.Record{Key: dbkey(k), Value: []byte("v"), Clock: ct}
		if _, err := s.db.Update(&rec, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// Ensure that a server stopped after answering flush_all but before its
// sweep ran (as one killed with kill -9 is) hides the flushed values at
// once when it starts again, sweeps them then, and keeps what was written
// after the flush.
func TestFlushRestartBeforeTheSweep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.kch")
	var skipped atomic.Bool
	testHookSweep = func() bool { skipped.Store(true); return false }
	t.Cleanup(func() { testHookSweep = nil })
	s, cl := startAlone(t, path)
	keys := make([]string, 300)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	putRecords(t, s, s.clk.Now(), keys...)
	if st := storeKey(t, cl, wire.OpSet, "before", "1"); st != wire.StatusOK {
		t.Fatalf("set: status %d", st)
	}
	flushAt(t, cl, 0)
	fp := s.flushing.at.Load()
	if rec := flushFileOf(t, path); !rec.equal(&flushRecord{At: fp}) {
		t.Fatalf("flush file after the reply: %+v, want the flush point %#x and no sweep", rec, fp)
	}
	if st := storeKey(t, cl, wire.OpSet, "after", "2"); st != wire.StatusOK {
		t.Fatalf("set after the flush: status %d", st)
	}
	cl.Close()
	if err := s.Close(); err != nil { // waits for sweeps: none ran
		t.Fatal(err)
	}
	if !skipped.Load() {
		t.Fatal("no sweep was started")
	}

	release := holdSweeps(t)
	s2, cl2 := startAlone(t, path)
	t.Cleanup(release)
	if got := s2.flushing.at.Load(); got != fp {
		t.Fatalf("flush point after the restart %#x, want %#x", got, fp)
	}
	if got := s2.clk.Now(); got <= fp {
		t.Fatalf("clock %#x after the restart is not past the flush point %#x", got, fp)
	}
	for _, k := range append(keys, "before") {
		if rec := rawRecord(t, s2, k); rec.Tombstone {
			t.Fatalf("%s is a tombstone: the test proves nothing", k)
		}
		if v, ok := getKey(t, cl2, wire.SrvGet, k); ok {
			t.Fatalf("get %s after the restart: %q", k, v.Data)
		}
	}
	if v, ok := getKey(t, cl2, wire.SrvGet, "after"); !ok || string(v.Data) != "2" {
		t.Fatalf("get after = %q, %v", v.Data, ok)
	}

	release()
	waitUntil(t, "restored sweep recorded", func() bool { return flushFileOf(t, path).Swept == fp })
	for _, k := range append(keys, "before") {
		if rec := rawRecord(t, s2, k); !rec.Tombstone || rec.Clock != fp {
			t.Fatalf("%s after the restored sweep: tombstone %v clock %#x, want a tombstone at %#x", k, rec.Tombstone, rec.Clock, fp)
		}
	}
	if rec := rawRecord(t, s2, "after"); rec.Tombstone || string(rec.Value) != "2" {
		t.Fatal("the restored sweep removed a write made after the flush")
	}
	if got := sweptTo(s2); got != fp {
		t.Fatalf("swept to %#x, want %#x", got, fp)
	}
}

// Ensure that a delayed flush_all survives a restart before its time: the
// restarted server puts it in force when it falls due, and the flush file
// no longer lists it then.
func TestFlushDelayedSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.kch")
	s, cl := startAlone(t, path)
	if st := storeKey(t, cl, wire.OpSet, "k", "v"); st != wire.StatusOK {
		t.Fatalf("set: status %d", st)
	}
	at := uint64(time.Now().Unix() + 2)
	flushAt(t, cl, at)
	if rec := flushFileOf(t, path); !rec.equal(&flushRecord{Sched: []uint64{at}}) {
		t.Fatalf("flush file after a delayed flush: %+v, want it scheduled at %d", rec, at)
	}
	cl.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.flushing.at.Load() != 0 {
		t.Fatal("the delayed flush fired before the restart: the test proves nothing")
	}

	s2, cl2 := startAlone(t, path)
	waitUntil(t, "delayed flush after the restart", func() bool {
		_, ok := getKey(t, cl2, wire.SrvGet, "k")
		return !ok
	})
	if got := s2.flushing.at.Load(); got != at<<32 {
		t.Fatalf("flush point %#x, want %#x", got, at<<32)
	}
	want := flushRecord{At: at << 32, Swept: at << 32}
	waitUntil(t, "flush file without the schedule", func() bool { return flushFileOf(t, path).equal(&want) })
	if rec := rawRecord(t, s2, "k"); !rec.Tombstone || rec.Clock != at<<32 {
		t.Fatalf("k: tombstone %v clock %#x", rec.Tombstone, rec.Clock)
	}
}

// Ensure that delayed flushes that fell due while the server was down are
// in force before it serves, each at its second's flush point, and leave
// the schedule, while later ones stay scheduled.
func TestFlushScheduleDueAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.kch")
	s, _ := startAlone(t, path)
	now := uint64(time.Now().Unix())
	putRecords(t, s, (now-200)<<32, "old")
	putRecords(t, s, (now-50)<<32, "newer")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rec := flushRecord{At: 5 << 32, Swept: 5 << 32, Sched: []uint64{now - 150, now - 100, now + 3600}}
	if err := writeFlushFile(flushFilePath(path), &rec); err != nil {
		t.Fatal(err)
	}
	release := holdSweeps(t)
	s2, cl2 := startAlone(t, path)
	t.Cleanup(release)
	if got := s2.flushing.at.Load(); got != (now-100)<<32 {
		t.Fatalf("flush point %#x, want %#x", got, (now-100)<<32)
	}
	if want := (flushRecord{At: (now - 100) << 32, Swept: 5 << 32, Sched: []uint64{now + 3600}}); !flushFileOf(t, path).equal(&want) {
		t.Fatalf("flush file %+v, want %+v", flushFileOf(t, path), want)
	}
	if _, ok := getKey(t, cl2, wire.SrvGet, "old"); ok {
		t.Fatal("old survived a flush that fell due while the server was down")
	}
	if _, ok := getKey(t, cl2, wire.SrvGet, "newer"); !ok {
		t.Fatal("newer was flushed")
	}
	s2.flushMu.Lock()
	armed := len(s2.flushTimers)
	s2.flushMu.Unlock()
	if armed != 1 {
		t.Fatalf("%d timers armed, want 1", armed)
	}
	release()
	waitUntil(t, "sweep", func() bool { return sweptTo(s2) == (now-100)<<32 })
}

// Ensure that the flush file is written only when something changes: not
// for a flush point at or below the stored one, nor for a delayed flush
// already scheduled or moot.
func TestFlushNoWriteWhenNothingChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.kch")
	s, cl := startAlone(t, path)
	if _, err := os.Stat(flushFilePath(path)); !os.IsNotExist(err) {
		t.Fatalf("a flush file before any flush: %v", err)
	}
	flushAt(t, cl, 0)
	fp := s.flushing.at.Load()
	// The counter is raised just after the file is renamed into place:
	// wait for both.
	waitUntil(t, "sweep recorded", func() bool { return flushFileOf(t, path).Swept == fp && s.flushing.writes.Load() >= 2 })
	if n := s.flushing.writes.Load(); n != 2 {
		t.Fatalf("%d writes for a flush and its sweep, want 2", n)
	}
	content, err := os.ReadFile(flushFilePath(path))
	if err != nil {
		t.Fatal(err)
	}
	flushAt(t, cl, 2000)                        // a past second, far below the flush point
	flushAt(t, cl, uint64(fp>>32)-1)            // the second before the flush point's
	flushAt(t, cl, uint64(time.Now().Unix())-1) // likewise: the clock is not behind
	if n := s.flushing.writes.Load(); n != 2 {
		t.Fatalf("%d writes after flushes below the flush point, want 2", n)
	}

	later := uint64(time.Now().Unix() + 3600)
	flushAt(t, cl, later)
	if n := s.flushing.writes.Load(); n != 3 {
		t.Fatalf("%d writes after scheduling a flush, want 3", n)
	}
	scheduled, err := os.ReadFile(flushFilePath(path))
	if err != nil {
		t.Fatal(err)
	}
	flushAt(t, cl, later) // scheduled already
	cl.Close()
	if err := s.Close(); err != nil { // waits for the sweeps those flushes started
		t.Fatal(err)
	}
	if n := s.flushing.writes.Load(); n != 3 {
		t.Fatalf("%d writes after scheduling the same flush again, want 3", n)
	}
	got, err := os.ReadFile(flushFilePath(path))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, scheduled) || bytes.Equal(got, content) {
		t.Fatalf("flush file\n%x\nwant\n%x", got, scheduled)
	}
	if want := (flushRecord{At: fp, Swept: fp, Sched: []uint64{later}}); !flushFileOf(t, path).equal(&want) {
		t.Fatalf("flush file %+v, want %+v", flushFileOf(t, path), want)
	}
}

// killStoreEnv names, for TestFlushKillHelper, the store of the server it
// runs for TestFlushSurvivesKill.
const killStoreEnv = "KUMO_FLUSH_KILL_STORE"

// TestFlushKillHelper is not a test: run by TestFlushSurvivesKill as a
// process of its own, it serves the store named by $KUMO_FLUSH_KILL_STORE
// without ever sweeping, prints its address and waits to be killed (or
// for its stdin to close).
func TestFlushKillHelper(t *testing.T) {
	path := os.Getenv(killStoreEnv)
	if path == "" {
		t.Skip("the server process of TestFlushSurvivesKill")
	}
	testHookSweep = func() bool { return false }
	s, _ := startAlone(t, path)
	fmt.Printf("\nserving %s\n", s.Addr())
	io.Copy(io.Discard, os.Stdin)
}

// Ensure that a server killed with SIGKILL after answering flush_all and
// before its sweep hides the flushed values when it starts again, sweeps
// them then, and keeps what was written after the flush.
func TestFlushSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	path := filepath.Join(t.TempDir(), "db.kch")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFlushKillHelper$")
	cmd.Env = append(os.Environ(), killStoreEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	addr := ""
	for sc := bufio.NewScanner(stdout); addr == "" && sc.Scan(); {
		addr, _ = strings.CutPrefix(sc.Text(), "serving ")
	}
	if addr == "" {
		t.Fatal("the server process did not start")
	}
	cl := rpc.Dial(addr, rpc.Options{CallTimeout: 10 * time.Second})
	defer cl.Close()
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		if st := storeKey(t, cl, wire.OpSet, keys[i], "v"); st != wire.StatusOK {
			t.Fatalf("set %s: status %d", keys[i], st)
		}
	}
	flushAt(t, cl, 0)
	v, ok := getKey(t, cl, wire.SrvGetRaw, "k0")
	if !ok || !v.Tombstone {
		t.Fatalf("getraw k0 after flush_all: %+v, %v", v, ok)
	}
	fp := v.Clock // the flush point
	if st := storeKey(t, cl, wire.OpSet, "after", "2"); st != wire.StatusOK {
		t.Fatalf("set after the flush: status %d", st)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("server process: %v, want killed", err)
	}
	if rec := flushFileOf(t, path); !rec.equal(&flushRecord{At: fp}) {
		t.Fatalf("flush file after the kill: %+v, want the flush point %#x and no sweep", rec, fp)
	}

	release := holdSweeps(t)
	s2, cl2 := startAlone(t, path)
	t.Cleanup(release)
	if got := s2.flushing.at.Load(); got != fp {
		t.Fatalf("flush point after the restart %#x, want %#x", got, fp)
	}
	for _, k := range keys {
		if rec := rawRecord(t, s2, k); rec.Tombstone {
			t.Fatalf("%s is a tombstone: the test proves nothing", k)
		}
		if v, ok := getKey(t, cl2, wire.SrvGet, k); ok {
			t.Fatalf("get %s after the kill: %q", k, v.Data)
		}
	}
	if v, ok := getKey(t, cl2, wire.SrvGet, "after"); !ok || string(v.Data) != "2" {
		t.Fatalf("get after = %q, %v", v.Data, ok)
	}
	release()
	waitUntil(t, "restored sweep recorded", func() bool { return flushFileOf(t, path).Swept == fp })
	for _, k := range keys {
		if rec := rawRecord(t, s2, k); !rec.Tombstone || rec.Clock != fp {
			t.Fatalf("%s after the restored sweep: tombstone %v clock %#x, want a tombstone at %#x", k, rec.Tombstone, rec.Clock, fp)
		}
	}
}

// Ensure that a write stamped with the very clock of a replica's flush
// point is not lost: the flush sweep left a tombstone at the flush point,
// which ties with the write in newest-wins, and the value must win (found
// by scripts/diff-memcached.py: flush_all, set, get missed through an
// embedded gateway reading its own replica, which had kept the tombstone
// while the coordinator served the value). Replication and rebalance
// batches alike.
func TestFlushReplicaTieWithSweepTombstone(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db.kch"))
	putRecords(t, s, s.clk.Now(), "k")
	flushAt(t, cl, 0)
	fp := s.flushing.at.Load()
	waitUntil(t, "sweep done", func() bool { return rawRecord(t, s, "k").Tombstone })
	if rec := rawRecord(t, s, "k"); rec.Clock != fp {
		t.Fatalf("sweep tombstone at %#x, want the flush point %#x", rec.Clock, fp)
	}
	// Another server's clock produced the same value for a write made
	// after the flush_all.
	res := replicateSet(t, s, cl, "k", "after", fp)
	if ok, _, err := msgpack.ReadBool(res); err != nil || !ok {
		t.Fatalf("replicate at the flush point answered %x, want true", res)
	}
	if v, ok := getKey(t, cl, wire.SrvGet, "k"); !ok || string(v.Data) != "after" {
		t.Fatalf("get k = %q, %v", v.Data, ok)
	}
	// A tombstone at the same clock does not win over the value.
	if ok, err := s.applyNewest(dbkey("k"), wire.AppendDBValue(nil, &wire.Value{Clock: fp, Tombstone: true})); err != nil || ok {
		t.Fatalf("tombstone at the value's clock applied: %v %v", ok, err)
	}
	// A rebalance batch brings a value at the flush point of a key
	// swept here: applied.
	putRecords(t, s, fp-1, "m")
	if ok, err := s.applyNewest(dbkey("m"), wire.AppendDBValue(nil, &wire.Value{Clock: fp - 1, Data: []byte("x")})); err != nil || ok {
		t.Fatalf("value below the flush point applied: %v %v", ok, err)
	}
	if ok, err := s.applyNewest(dbkey("m"), wire.AppendDBValue(nil, &wire.Value{Clock: fp, Data: []byte("moved")})); err != nil || !ok {
		t.Fatalf("value at the flush point not applied: %v %v", ok, err)
	}
	if v, ok := getKey(t, cl, wire.SrvGet, "m"); !ok || string(v.Data) != "moved" {
		t.Fatalf("get m = %q, %v", v.Data, ok)
	}
}

// replicateSet sends a ReplicateSet of key stamped ct as a kumo
// coordinator does (with the whs clock) and returns the raw result.
func replicateSet(t *testing.T, s *Server, cl *rpc.Client, key, val string, ct uint64) []byte {
	t.Helper()
	return call(t, cl, wire.SrvReplicateSet, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 5)
		b = msgpack.AppendUint(b, ct)
		b = msgpack.AppendUint(b, 0)
		b = msgpack.AppendRaw(b, dbkey(key))
		v := wire.Value{Clock: ct, Data: []byte(val)}
		b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
		b = wire.AppendDBValue(b, &v)
		return msgpack.AppendUint(b, s.whs.Load().Clock())
	})
}

// Ensure that a replica does not take a value stamped before its flush
// point (a coordinator whose clock lags, or a rebalance from a server that
// missed the flush): it keeps a tombstone at the flush point and tells the
// coordinator the newer clock, so that the coordinator re-stamps its write
// above it instead of acknowledging a write the replica hides.
func TestFlushReplicaRefusesOlderValues(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db.kch"))
	lag := s.clk.Now() // a coordinator's stamp from before the flush
	flushAt(t, cl, 0)
	fp := s.flushing.at.Load()

	res := replicateSet(t, s, cl, "late", "old", lag)
	if newer, _, err := msgpack.ReadUint(res); err != nil || newer != fp {
		t.Fatalf("replicate below the flush point answered %x; want the newer clock %#x", res, fp)
	}
	if rec := rawRecord(t, s, "late"); !rec.Tombstone || rec.Clock != fp {
		t.Fatalf("stored tombstone %v clock %#x", rec.Tombstone, rec.Clock)
	}
	// The coordinator re-stamps above the flush point: stored.
	res = replicateSet(t, s, cl, "late", "new", s.clk.Now())
	if ok, _, err := msgpack.ReadBool(res); err != nil || !ok {
		t.Fatalf("re-stamped replicate answered %x", res)
	}
	if v, ok := getKey(t, cl, wire.SrvGet, "late"); !ok || string(v.Data) != "new" {
		t.Fatalf("get late = %q, %v", v.Data, ok)
	}

	// A rebalance batch: the old value becomes a tombstone, the new one
	// is applied.
	res = call(t, cl, wire.SrvReplicateBatch, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 2)
		b = msgpack.AppendUint(b, s.clk.Now())
		b = msgpack.AppendArrayHeader(b, 2)
		for _, kv := range []struct {
			key string
			ct  uint64
		}{{"moved-old", lag}, {"moved-new", s.clk.Now()}} {
			b = msgpack.AppendArrayHeader(b, 2)
			b = msgpack.AppendRaw(b, dbkey(kv.key))
			v := wire.Value{Clock: kv.ct, Data: []byte("x")}
			b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
			b = wire.AppendDBValue(b, &v)
		}
		return b
	})
	if n, _, err := msgpack.ReadUint(res); err != nil || n != 1 {
		t.Fatalf("batch applied %x, want 1", res)
	}
	if _, ok := getKey(t, cl, wire.SrvGet, "moved-old"); ok {
		t.Fatal("a value older than the flush came back through a rebalance")
	}
	if rec := rawRecord(t, s, "moved-old"); !rec.Tombstone || rec.Clock != fp {
		t.Fatalf("moved-old: tombstone %v clock %#x", rec.Tombstone, rec.Clock)
	}
	if _, ok := getKey(t, cl, wire.SrvGet, "moved-new"); !ok {
		t.Fatal("moved-new missing")
	}
}

// Ensure that flush_all with a delay is answered at once and empties the
// store when its time comes, not before; and that a write after it is
// served even on a server whose wall clock lags (its clock moves past the
// flush point).
func TestFlushDelayed(t *testing.T) {
	lagging := clock.New(clock.Options{Offset: -time.Hour})
	s, cl := startWithClock(t, filepath.Join(t.TempDir(), "db.kch"), lagging)
	if st := storeKey(t, cl, wire.OpSet, "k", "v"); st != wire.StatusOK {
		t.Fatalf("set: status %d", st)
	}
	at := uint64(time.Now().Unix() + 2)
	flushAt(t, cl, at)
	if _, ok := getKey(t, cl, wire.SrvGet, "k"); !ok && time.Now().Unix() < int64(at)-1 {
		t.Fatal("a delayed flush hid the key at once")
	}
	waitUntil(t, "delayed flush", func() bool {
		_, ok := getKey(t, cl, wire.SrvGet, "k")
		return !ok
	})
	if got := s.flushing.at.Load(); got != at<<32 {
		t.Fatalf("flush point %#x, want %#x", got, at<<32)
	}
	for _, k := range []string{"fresh", "k"} { // a new key; over the tombstone
		if st := storeKey(t, cl, wire.OpSet, k, "after"); st != wire.StatusOK {
			t.Fatalf("set %s after the flush: status %d", k, st)
		}
		if v, ok := getKey(t, cl, wire.SrvGet, k); !ok || string(v.Data) != "after" {
			t.Fatalf("get %s after the flush on a lagging server = %q, %v", k, v.Data, ok)
		}
	}
}

// Ensure that a flush_all from the past flushes what was stored before
// that second only.
func TestFlushPastTime(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db.kch"))
	old := store.Record{Key: dbkey("old"), Value: []byte("v"), Clock: 1000 << 32}
	if _, err := s.db.Update(&old, nil); err != nil {
		t.Fatal(err)
	}
	if st := storeKey(t, cl, wire.OpSet, "new", "v"); st != wire.StatusOK {
		t.Fatalf("set: status %d", st)
	}
	flushAt(t, cl, 2000)
	if _, ok := getKey(t, cl, wire.SrvGet, "old"); ok {
		t.Fatal("old survived")
	}
	if _, ok := getKey(t, cl, wire.SrvGet, "new"); !ok {
		t.Fatal("new was flushed")
	}
}

// BenchmarkFlushReply measures the time to flush_all's reply on a server
// holding 100,000 items (the sweep runs behind; it is waited for between
// iterations, off the clock, and reported as sweep-ms/op: the time flush_all
// took to answer before it became lazy).
func BenchmarkFlushReply(b *testing.B) {
	s, err := New(Config{
		Self:      testSelf,
		Listen:    "127.0.0.1:0",
		StorePath: filepath.Join(b.TempDir(), "db.kch"),
		Log:       logging.New(io.Discard, logging.Info).With("server"),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cl := rpc.Dial(s.Addr().String(), rpc.Options{CallTimeout: 10 * time.Second})
	defer cl.Close()
	var sweep time.Duration // after the reply, until the sweep finished (at most)
	for b.Loop() {
		b.StopTimer()
		for i := 0; i < 100_000; i++ {
			rec := store.Record{Key: dbkey("k" + strconv.Itoa(i)), Value: []byte("v"), Clock: s.clk.Now()}
			if _, err := s.db.Update(&rec, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		res, err := cl.Call(context.Background(), wire.SrvFlush, func(p []byte) []byte {
			p = msgpack.AppendArrayHeader(p, 1)
			return msgpack.AppendUint(p, 0)
		})
		if err != nil {
			b.Fatal(err)
		}
		res.Release()
		b.StopTimer()
		start := time.Now()
		for sweptTo(s) != s.flushing.at.Load() { // wait for the sweep
			time.Sleep(time.Millisecond)
		}
		sweep += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(sweep.Milliseconds())/float64(b.N), "sweep-ms/op")
}

// sweptTo returns the flush point the last finished sweep reached.
func sweptTo(s *Server) uint64 {
	s.flushing.sweepMu.Lock()
	defer s.flushing.sweepMu.Unlock()
	return s.flushing.swept
}

// Ensure that a flush with the gateway's flush point (a request this
// server takes late: paused while the others flushed and took later
// writes) hides only what is stamped below that point, whatever this
// server's clock says by then, also after the sweep; and that the clock
// moves past the point, so that a write made after it is stamped above.
func TestFlushAtGatewayPoint(t *testing.T) {
	s, cl := startAlone(t, filepath.Join(t.TempDir(), "db.kch"))
	before := s.clk.Now()
	putRecords(t, s, before, "before")
	fc := before + 1
	putRecords(t, s, fc+5, "after") // a later write a replace copied here
	for range 3 {
		s.clk.Now() // this server's clock is past both by now
	}
	res := call(t, cl, wire.SrvFlush, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = msgpack.AppendUint(b, 0)
		b = msgpack.AppendUint(b, 0)
		return msgpack.AppendUint(b, fc)
	})
	if ok, _, err := msgpack.ReadBool(res); err != nil || !ok {
		t.Fatalf("flush reply %x", res)
	}
	if got := s.flushing.at.Load(); got != fc {
		t.Fatalf("flush point %x, want the gateway's %x", got, fc)
	}
	waitUntil(t, "the sweep", func() bool { return sweptTo(s) == fc })
	if _, ok := getKey(t, cl, wire.SrvGet, "before"); ok {
		t.Fatal("the value from before the flush point survived")
	}
	if v, ok := getKey(t, cl, wire.SrvGet, "after"); !ok || string(v.Data) != "v" {
		t.Fatalf("the later write: %q, %v", v.Data, ok)
	}
	if rec := rawRecord(t, s, "after"); rec.Tombstone || rec.Clock != fc+5 {
		t.Fatalf("the later write after the sweep: %+v", rec)
	}
	// A flush point above this server's clock moves the clock past it.
	ahead := s.clk.Current() + 1000
	call(t, cl, wire.SrvFlush, func(b []byte) []byte {
		b = msgpack.AppendArrayHeader(b, 3)
		b = msgpack.AppendUint(b, 0)
		b = msgpack.AppendUint(b, 0)
		return msgpack.AppendUint(b, ahead)
	})
	if st := storeKey(t, cl, wire.OpSet, "next", "v"); st != wire.StatusOK {
		t.Fatalf("set after the flush: status %d", st)
	}
	if v, ok := getKey(t, cl, wire.SrvGet, "next"); !ok || v.Clock <= ahead {
		t.Fatalf("a write after the flush: clock %x, ok %v; want above %x", v.Clock, ok, ahead)
	}
}
