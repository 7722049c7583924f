package gateway

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"kumofs/kumo/wire"
	"kumofs/proto/memcache"
	"kumofs/proto/msgpack"
	"kumofs/proto/rpc"
)

// Ensure that a write that must not apply twice (incr, append, delete) carries a
// request id and, once an attempt may have taken effect (the coordinator
// took it and the connection died before the answer), is sent again with
// the same id (the server answers a repeated id with the first outcome,
// see the server's dedupTable); a set, which may apply twice, carries none
// and is retried too; each new write gets a new id.
func TestRetryWithRequestID(t *testing.T) {
	var calls [4]atomic.Int32 // by method: arith, append, set, remove
	ids := make(chan uint64, 16)
	g, _ := fakeCluster(t, 1, func(_ int, req *rpc.Request) {
		var n int32
		switch {
		case req.Method == wire.SrvArith:
			n = calls[0].Add(1)
		case req.Method == wire.SrvStore && isAppend(req.Params):
			n = calls[1].Add(1)
		case req.Method == wire.SrvStore:
			n = calls[2].Add(1)
		case req.Method == wire.SrvRemove:
			n = calls[3].Add(1)
		default:
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
			return
		}
		ids <- requestID(req.Params)
		if req.Method == wire.SrvStore && isAppend(req.Params) {
			if lim := nthUint(req.Params, 5); lim != memcache.DefaultMaxItemSize {
				t.Errorf("append sent item size limit %d, want %d", lim, memcache.DefaultMaxItemSize)
			}
		}
		if n == 1 {
			req.Conn.Close() // applied, and the answer lost
			return
		}
		req.Reply(func(b []byte) []byte {
			if req.Method == wire.SrvArith {
				b = msgpack.AppendArrayHeader(b, 5)
				b = msgpack.AppendUint(b, wire.StatusOK)
				b = msgpack.AppendUint(b, 7)
				b = msgpack.AppendUint(b, 9)
				b = msgpack.AppendBool(b, false)
				return msgpack.AppendUint(b, 0)
			}
			b = msgpack.AppendArrayHeader(b, 2)
			b = msgpack.AppendUint(b, wire.StatusOK)
			return msgpack.AppendUint(b, 9)
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sameID := func(what string) uint64 {
		t.Helper()
		a, b := <-ids, <-ids
		if a == 0 || a != b {
			t.Errorf("%s: request ids %d and %d, want the same, not 0", what, a, b)
		}
		return a
	}
	if v, _, err := g.Incr(ctx, []byte("n"), 1, false, nil); err != nil || v != 7 {
		t.Errorf("incr whose first answer was lost: %d, %v; want 7 from the retry", v, err)
	}
	incrID := sameID("incr")
	it := memcache.Item{Key: []byte("a"), Value: []byte("x")}
	if _, err := g.Store(ctx, memcache.ModeAppend, &it); err != nil {
		t.Errorf("append whose first answer was lost: %v", err)
	}
	if id := sameID("append"); id == incrID {
		t.Errorf("append reused the incr's request id %d", id)
	}
	if cas, err := g.Store(ctx, memcache.ModeSet, &it); err != nil || cas != 9 {
		t.Errorf("set whose first answer was lost: cas %d, %v; want it retried", cas, err)
	}
	<-ids
	<-ids
	if err := g.Delete(ctx, []byte("a"), 0); err != nil {
		t.Errorf("delete whose first answer was lost: %v", err)
	}
	sameID("delete")
	for i, want := range []int32{2, 2, 2, 2} {
		if got := calls[i].Load(); got != want {
			t.Errorf("method %d reached the server %d times, want %d", i, got, want)
		}
	}
}

// requestID returns the request id of an arith or append request, or 0 if
// the request has none (a set's last parameter is its cas).
func requestID(params []byte) uint64 {
	switch n, _, _ := msgpack.ReadArrayHeader(params); n {
	case 10: // SrvArith
		return nthUint(params, 9)
	case 6: // SrvStore of an append or prepend: [..., request_id, limit]
		return nthUint(params, 4)
	case 3: // SrvRemove: [DBKey, cas, request_id]
		return nthUint(params, 2)
	}
	return 0
}

// nthUint returns parameter i as a uint, or 0.
func nthUint(params []byte, i int) uint64 {
	n, p, err := msgpack.ReadArrayHeader(params)
	if err != nil || i >= int(n) {
		return 0
	}
	for ; i > 0 && err == nil; i-- {
		p, err = msgpack.Skip(p)
	}
	v, _, _ := msgpack.ReadUint(p)
	return v
}

// isAppend reports whether SrvStore params [mode, ...] ask for an append.
func isAppend(params []byte) bool {
	_, p, err := msgpack.ReadArrayHeader(params)
	if err != nil {
		return false
	}
	mode, _, err := msgpack.ReadUint(p)
	return err == nil && mode == wire.OpAppend
}

// Ensure that StoreAsync sends add, replace, append and prepend with their
// own mode, maps the server's NotStored to memcache.ErrNotStored, sends an
// add or prepend whose answer was lost again with the same request id,
// key (without a second key prefix), value, flags and exptime, so that
// the second attempt's answer stands, and declines set (SetAsync's) and
// cas.
func TestStoreAsync(t *testing.T) {
	var lost atomic.Bool
	modes := make(chan uint64, 8)
	ids := make(chan uint64, 8) // of appends and prepends
	type sent struct {
		id, flags, exptime uint64
		key, value         string
	}
	adds := make(chan sent, 8)
	g, _ := fakeCluster(t, 1, func(_ int, req *rpc.Request) {
		_, p, _ := msgpack.ReadArrayHeader(req.Params)
		mode, p, _ := msgpack.ReadUint(p)
		if req.Method != wire.SrvStore {
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
			return
		}
		modes <- mode
		if mode == wire.OpAppend || mode == wire.OpPrepend {
			ids <- requestID(req.Params)
		}
		if mode == wire.OpAdd {
			dbkey, p, _ := msgpack.ReadRaw(p)
			raw, _, _ := msgpack.ReadRaw(p)
			v, _ := wire.ParseDBValue(raw)
			adds <- sent{requestID(req.Params), uint64(v.Flags), uint64(v.Exptime), string(dbkey[8:]), string(v.Data)}
		}
		if lost.CompareAndSwap(true, false) {
			req.Conn.Close() // applied, and the answer lost
			return
		}
		st := uint64(wire.StatusOK)
		if mode == wire.OpAdd {
			st = wire.StatusNotStored
		}
		req.Reply(func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = msgpack.AppendUint(b, st)
			return msgpack.AppendUint(b, 9)
		})
	})
	store := func(mode memcache.StoreMode) (uint64, error) {
		t.Helper()
		type res struct {
			cas uint64
			err error
		}
		ch := make(chan res, 1)
		it := memcache.Item{Key: []byte("a"), Value: []byte("x"), Flags: 7, Exptime: 2000000000}
		if !g.StoreAsync(mode, &it, func(cas uint64, err error) { ch <- res{cas, err} }) {
			t.Fatalf("StoreAsync(%d) declined", mode)
		}
		select {
		case r := <-ch:
			return r.cas, r.err
		case <-time.After(20 * time.Second):
			t.Fatalf("StoreAsync(%d): no answer", mode)
		}
		return 0, nil
	}
	g.cfg.KeyPrefix = []byte("p:")
	// The asynchronous path uses an open connection only: open it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	warm := memcache.Item{Key: []byte("a"), Value: []byte("x")}
	if _, err := g.Store(ctx, memcache.ModeReplace, &warm); err != nil {
		t.Fatal(err)
	}
	<-modes
	if _, err := store(memcache.ModeAdd); !errors.Is(err, memcache.ErrNotStored) {
		t.Errorf("add: %v, want ErrNotStored", err)
	}
	if m := <-modes; m != wire.OpAdd {
		t.Errorf("add went out as mode %d, want %d", m, wire.OpAdd)
	}
	if cas, err := store(memcache.ModeReplace); err != nil || cas != 9 {
		t.Errorf("replace: cas %d, %v; want 9, nil", cas, err)
	}
	if m := <-modes; m != wire.OpReplace {
		t.Errorf("replace went out as mode %d, want %d", m, wire.OpReplace)
	}
	if _, err := store(memcache.ModeAppend); err != nil {
		t.Errorf("append: %v", err)
	}
	if m := <-modes; m != wire.OpAppend {
		t.Errorf("append went out as mode %d, want %d", m, wire.OpAppend)
	}
	<-adds
	lost.Store(true)
	if _, err := store(memcache.ModeAdd); !errors.Is(err, memcache.ErrNotStored) {
		t.Errorf("add whose first answer was lost: %v, want ErrNotStored from the second attempt", err)
	}
	<-modes
	<-modes
	want := sent{flags: 7, exptime: 2000000000, key: "p:a", value: "x"}
	a, b := <-adds, <-adds
	if want.id = a.id; a.id == 0 || a != want || b != want {
		t.Errorf("the add's two attempts: %+v and %+v; want both %+v, a request id", a, b, want)
	}
	if _, err := g.Store(ctx, memcache.ModeReplace, &warm); err != nil { // a connection again
		t.Fatal(err)
	}
	<-modes
	<-ids
	lost.Store(true)
	if cas, err := store(memcache.ModePrepend); err != nil || cas != 9 {
		t.Errorf("prepend whose first answer was lost: cas %d, %v; want 9 from the second attempt", cas, err)
	}
	for range 2 {
		if m := <-modes; m != wire.OpPrepend {
			t.Errorf("prepend went out as mode %d, want %d", m, wire.OpPrepend)
		}
	}
	if a, b := <-ids, <-ids; a == 0 || a != b {
		t.Errorf("request ids of the prepend's two attempts: %d, %d; want the same", a, b)
	}
	it := memcache.Item{Key: []byte("a"), Value: []byte("x")}
	for _, mode := range []memcache.StoreMode{memcache.ModeSet, memcache.ModeCAS} {
		if g.StoreAsync(mode, &it, func(uint64, error) { t.Errorf("mode %d: done called", mode) }) {
			t.Errorf("StoreAsync took mode %d", mode)
		}
	}
	// stats total_items counts the stores that succeeded: the two blocking
	// replaces, the asynchronous replace, the append and the prepend.
	stats := map[string]string{}
	if err := g.Stats(ctx, func(k, v string) { stats[k] = v }); err != nil {
		t.Fatal(err)
	}
	if stats["total_items"] != "5" {
		t.Errorf("total_items %q, want 5", stats["total_items"])
	}
}

// Ensure that TouchAsync sends SrvTouch [DBKey, exptime, false] once, maps
// NotFound to memcache.ErrNotFound, and reports a touch whose answer was
// lost as memcache.ErrMaybeApplied.
func TestTouchAsync(t *testing.T) {
	var lost atomic.Bool
	exps := make(chan uint64, 8)
	g, _ := fakeCluster(t, 1, func(_ int, req *rpc.Request) {
		if req.Method != wire.SrvTouch {
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
			return
		}
		_, p, _ := msgpack.ReadArrayHeader(req.Params)
		key, p, _ := msgpack.ReadRaw(p)
		exp, p, _ := msgpack.ReadUint(p)
		want, _, _ := msgpack.ReadBool(p)
		if want {
			t.Errorf("touch asked for the value")
		}
		exps <- exp
		if lost.Load() {
			req.Conn.Close()
			return
		}
		st := uint64(wire.StatusOK)
		if key[len(key)-1] == 'x' { // the dbkey ends with the memcached key
			st = wire.StatusNotFound
		}
		req.Reply(func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = msgpack.AppendUint(b, st)
			return msgpack.AppendNil(b)
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Touch(ctx, []byte("a"), 5); err != nil { // opens the connection
		t.Fatal(err)
	}
	<-exps
	touch := func(key string, exp int64) error {
		t.Helper()
		ch := make(chan error, 1)
		if !g.TouchAsync([]byte(key), exp, func(err error) { ch <- err }) {
			t.Fatalf("TouchAsync(%s) declined", key)
		}
		select {
		case err := <-ch:
			return err
		case <-time.After(20 * time.Second):
			t.Fatalf("TouchAsync(%s): no answer", key)
		}
		return nil
	}
	if err := touch("a", 77); err != nil {
		t.Errorf("touch a: %v", err)
	}
	if e := <-exps; e != 77 {
		t.Errorf("exptime on the wire %d, want 77", e)
	}
	if err := touch("x", 1); !errors.Is(err, memcache.ErrNotFound) {
		t.Errorf("touch x: %v, want ErrNotFound", err)
	}
	<-exps
	lost.Store(true)
	if err := touch("a", 1); !errors.Is(err, memcache.ErrMaybeApplied) {
		t.Errorf("touch whose answer was lost: %v, want ErrMaybeApplied", err)
	}
}

// Ensure that a blocking touch whose first attempt was lost after it left
// and whose retry finds no item reports success when its exptime is
// already past (the first attempt expired the item), and NOT_FOUND when it
// is not (the first attempt cannot have removed it), and that a gat in the
// first case misses.
func TestTouchMayHaveExpired(t *testing.T) {
	var calls atomic.Int32
	g, _ := fakeCluster(t, 1, func(_ int, req *rpc.Request) {
		if req.Method != wire.SrvTouch {
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
			return
		}
		if calls.Add(1)%2 == 1 {
			req.Conn.Close() // applied, and the answer lost
			return
		}
		req.Reply(func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = msgpack.AppendUint(b, wire.StatusNotFound)
			return msgpack.AppendNil(b)
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	past := time.Now().Unix() - 1
	if err := g.Touch(ctx, []byte("a"), past); err != nil {
		t.Errorf("touch to a past exptime, first answer lost, then not found: %v, want touched", err)
	}
	if err := g.Touch(ctx, []byte("a"), past+3600); !errors.Is(err, memcache.ErrNotFound) {
		t.Errorf("touch to a later exptime, first answer lost, then not found: %v, want ErrNotFound", err)
	}
	var it memcache.Item
	if err := g.GetAndTouch(ctx, []byte("a"), past, nil, &it); !errors.Is(err, memcache.ErrNotFound) {
		t.Errorf("gat to a past exptime, first answer lost, then not found: %v, want ErrNotFound", err)
	}
	if got := calls.Load(); got != 6 {
		t.Errorf("%d touches reached the server, want 6", got)
	}
}

// Ensure that IncrAsync sends SrvArith with a request id, returns the new
// value, maps NotFound and NonNumeric, sends an incr whose answer was lost
// again with the same id and returns the answer to that, and reports one
// that never got an answer as memcache.ErrMaybeApplied (memcache answers
// SERVER_ERROR rather than send it again under a new id).
func TestIncrAsync(t *testing.T) {
	var drop atomic.Int32 // answers still to lose
	var calls atomic.Int32
	ids := make(chan uint64, 64)
	g, _ := fakeCluster(t, 1, func(_ int, req *rpc.Request) {
		if req.Method != wire.SrvArith {
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
			return
		}
		calls.Add(1)
		n, p, _ := msgpack.ReadArrayHeader(req.Params)
		key, p, _ := msgpack.ReadRaw(p)
		delta, p, _ := msgpack.ReadUint(p)
		decr, p, _ := msgpack.ReadBool(p)
		create, _, _ := msgpack.ReadBool(p)
		if n != 10 || create {
			t.Errorf("arith params: %d of them, create %v; want 10, false", n, create)
		}
		select {
		case ids <- requestID(req.Params):
		default:
		}
		if drop.Load() > 0 {
			drop.Add(-1)
			req.Conn.Close()
			return
		}
		st, val := uint64(wire.StatusOK), 100+delta
		if decr {
			val = 100 - delta
		}
		switch key[len(key)-1] { // the dbkey ends with the memcached key
		case 'x':
			st = wire.StatusNotFound
		case 'w':
			st = wire.StatusNonNumeric
		}
		req.Reply(func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 5)
			b = msgpack.AppendUint(b, st)
			b = msgpack.AppendUint(b, val)
			b = msgpack.AppendUint(b, 9)
			b = msgpack.AppendBool(b, false)
			return msgpack.AppendUint(b, 0)
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := g.Incr(ctx, []byte("a"), 1, false, nil); err != nil { // opens the connection
		t.Fatal(err)
	}
	incr := func(key string, delta uint64, decr bool) (uint64, error) {
		t.Helper()
		type res struct {
			v   uint64
			err error
		}
		ch := make(chan res, 1)
		if !g.IncrAsync([]byte(key), delta, decr, func(v uint64, err error) { ch <- res{v, err} }) {
			t.Fatalf("IncrAsync(%s) declined", key)
		}
		select {
		case r := <-ch:
			return r.v, r.err
		case <-time.After(20 * time.Second):
			t.Fatalf("IncrAsync(%s): no answer", key)
		}
		return 0, nil
	}
	if v, err := incr("a", 5, false); v != 105 || err != nil {
		t.Errorf("incr a 5: %d, %v; want 105", v, err)
	}
	if v, err := incr("a", 7, true); v != 93 || err != nil {
		t.Errorf("decr a 7: %d, %v; want 93", v, err)
	}
	if _, err := incr("x", 1, false); !errors.Is(err, memcache.ErrNotFound) {
		t.Errorf("incr x: %v, want ErrNotFound", err)
	}
	if _, err := incr("w", 1, false); !errors.Is(err, memcache.ErrNonNumeric) {
		t.Errorf("incr w: %v, want ErrNonNumeric", err)
	}
	for len(ids) > 0 {
		<-ids
	}
	drop.Store(1)
	if v, err := incr("a", 2, false); v != 102 || err != nil {
		t.Errorf("incr whose first answer was lost: %d, %v; want 102 from the second attempt", v, err)
	}
	if a, b := <-ids, <-ids; a == 0 || a != b {
		t.Errorf("request ids of the two attempts: %d, %d; want the same", a, b)
	}
	drop.Store(1 << 20)
	before := calls.Load()
	if _, err := incr("a", 1, false); !errors.Is(err, memcache.ErrMaybeApplied) {
		t.Errorf("incr that never got an answer: %v, want ErrMaybeApplied", err)
	}
	if got := calls.Load() - before; got < 2 {
		t.Errorf("the lost incr reached the server %d times, want it sent again", got)
	}
}

// Ensure that an asynchronous delete whose answer was lost is sent again
// with the same request id, and that the retry's answer is the one given:
// deleted from the first outcome, or not found when there was no key
// (before request ids a lost answer and a missing key made "deleted").
func TestDeleteAsyncRetry(t *testing.T) {
	var lost atomic.Bool
	var status atomic.Uint64
	ids := make(chan uint64, 8)
	g, _ := fakeCluster(t, 1, func(_ int, req *rpc.Request) {
		if req.Method != wire.SrvRemove {
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
			return
		}
		ids <- requestID(req.Params)
		if lost.CompareAndSwap(true, false) {
			req.Conn.Close() // the answer lost
			return
		}
		st := status.Load()
		req.Reply(func(b []byte) []byte {
			b = msgpack.AppendArrayHeader(b, 2)
			b = msgpack.AppendUint(b, st)
			return msgpack.AppendUint(b, 9)
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Delete(ctx, []byte("k"), 0); err != nil { // opens the connection
		t.Fatal(err)
	}
	<-ids
	recvID := func() uint64 {
		t.Helper()
		select {
		case id := <-ids:
			return id
		case <-time.After(5 * time.Second):
			t.Fatal("the delete was not sent again")
			return 0
		}
	}
	del := func() error {
		t.Helper()
		res := make(chan error, 1)
		if !g.DeleteAsync([]byte("k"), func(err error) { res <- err }) {
			t.Fatal("DeleteAsync did not start")
		}
		select {
		case err := <-res:
			return err
		case <-ctx.Done():
			t.Fatal("delete never finished")
			return nil
		}
	}
	for _, tt := range []struct {
		st   uint64
		want error
	}{{wire.StatusOK, nil}, {wire.StatusNotFound, memcache.ErrNotFound}} {
		status.Store(tt.st)
		lost.Store(true)
		if err := del(); !errors.Is(err, tt.want) && err != tt.want {
			t.Errorf("retry answered status %d: %v, want %v", tt.st, err, tt.want)
		}
		if a, b := recvID(), recvID(); a == 0 || a != b {
			t.Errorf("request ids of the delete's two attempts: %d, %d; want the same", a, b)
		}
	}
}

// Ensure that an add, replace or cas whose first answer was lost is sent
// again with the same request id (the server answers a stored first
// attempt from its ids) and that the retry's NOT_STORED or EXISTS stands,
// also when the item there happens to equal ours: it is not our write.
func TestConditionalStoreRetry(t *testing.T) {
	var calls atomic.Int32
	ids := make(chan uint64, 8)
	g, _ := fakeCluster(t, 1, func(_ int, req *rpc.Request) {
		switch req.Method {
		case wire.SrvStore:
			ids <- requestID(req.Params)
			if calls.Add(1)%2 == 1 {
				req.Conn.Close() // the answer is lost; here it was not applied
				return
			}
			_, p, _ := msgpack.ReadArrayHeader(req.Params)
			mode, _, _ := msgpack.ReadUint(p)
			st := uint64(wire.StatusNotStored)
			if mode == wire.OpCAS {
				st = wire.StatusExists
			}
			req.Reply(func(b []byte) []byte {
				b = msgpack.AppendArrayHeader(b, 1)
				return msgpack.AppendUint(b, st)
			})
		case wire.SrvGet: // the item there equals ours
			v := wire.Value{Data: []byte("9")}
			req.Reply(func(b []byte) []byte {
				b = msgpack.AppendRawHeader(b, uint32(wire.DBValueLen(&v)))
				return wire.AppendDBValue(b, &v)
			})
		default:
			req.ReplyError(&rpc.Error{Code: rpc.CodeProtocol, Msg: "unexpected"})
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		mode memcache.StoreMode
		want error
	}{{memcache.ModeAdd, memcache.ErrNotStored}, {memcache.ModeReplace, memcache.ErrNotStored}, {memcache.ModeCAS, memcache.ErrExists}} {
		it := memcache.Item{Key: []byte("k"), Value: []byte("9"), CAS: 5}
		if _, err := g.Store(ctx, c.mode, &it); !errors.Is(err, c.want) {
			t.Errorf("%v whose first answer was lost: %v, want %v", c.mode, err, c.want)
		}
		if a, b := <-ids, <-ids; a == 0 || a != b {
			t.Errorf("%v: request ids %d and %d, want the same, not 0", c.mode, a, b)
		}
	}
}
